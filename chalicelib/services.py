"""The app's object graph, built lazily from settings and a client factory.

``app.py`` holds one :class:`Services` and asks it for what a handler needs;
tests build a fresh one per test (see ``tests/conftest.py``). Each property is
made on first use, so a Lambda that only handles S3 events never reads the
token secret.
"""
from functools import cached_property

from chalicelib.access import Access
from chalicelib.attendance import AttendanceStore
from chalicelib.classes import Classes, ClassStore, Memberships
from chalicelib.evidence import Evidence, EvidenceFiles, EvidenceQueue, S3File
from chalicelib.auth import Authenticator, ForgettingUserStore, RecentUsers
from chalicelib.clients import ClientFactory
from chalicelib.conversion import Converter
from chalicelib.face_search import FaceSearch
from chalicelib.faces import FaceCollection
from chalicelib.logs import get_logger
from chalicelib.multipart import MultipartUploads
from chalicelib.reports import Reports
from chalicelib.retention import Retention
from chalicelib.sessions import SessionStore, SessionWorkflow
from chalicelib.settings import load_settings
from chalicelib.strangers import FaceGrouping, StrangerMerges
from chalicelib.students import StudentStore, Students
from chalicelib.tokens import SsmSecret, TokenService
from chalicelib.uploads import Uploads
from chalicelib.users import Accounts, UserStore


class Services:
    def __init__(self, settings=None, clients=None):
        self._settings = settings
        self._clients = clients

    @cached_property
    def settings(self):
        return self._settings or load_settings()

    @cached_property
    def clients(self):
        return self._clients or ClientFactory(region=self.settings.region)

    @cached_property
    def logger(self):
        return get_logger()

    @cached_property
    def users(self):
        """The users table; every change through it makes the authenticator read
        the users it remembers again (see :class:`chalicelib.auth.RecentUsers`)."""
        return ForgettingUserStore(UserStore(self.clients.table(self.settings.users_table)),
                                   RecentUsers())

    @cached_property
    def tokens(self):
        secret = SsmSecret(self.clients.client("ssm"), self.settings.token_secret_parameter)
        return TokenService(secret, self.settings.token_ttl_seconds)

    @cached_property
    def authenticator(self):
        return Authenticator(self.users, self.tokens, self.logger)

    @cached_property
    def photos(self):
        return Uploads(self.clients.client("s3"), self.settings.photos_bucket)

    @cached_property
    def videos(self):
        return Uploads(self.clients.client("s3"), self.settings.videos_bucket)

    # -- students ---------------------------------------------------------------
    @cached_property
    def faces(self):
        return FaceCollection(self.clients.client("rekognition"), self.settings.face_collection,
                              match_threshold=self.settings.match_threshold)

    @cached_property
    def students(self):
        return Students(StudentStore(self.clients.table(self.settings.students_table)),
                        self.faces, self.photos,
                        max_photo_bytes=self.settings.max_photo_bytes, logger=self.logger)

    # -- sessions and attendance ------------------------------------------------
    @cached_property
    def face_search(self):
        s = self.settings
        return FaceSearch(self.clients.client("rekognition"), collection_id=s.face_collection,
                          threshold=s.match_threshold, region=s.region,
                          topic=s.completion_topic, role=s.rekognition_role,
                          sts=self.clients.client("sts"))

    @cached_property
    def attendance(self):
        return AttendanceStore(self.clients.table(self.settings.attendance_table))

    @cached_property
    def session_store(self):
        return SessionStore(self.clients.table(self.settings.sessions_table))

    @cached_property
    def sessions(self):
        # The roster is the students service (get, get_many, list_all) for a
        # session without a class, the class's enrolment otherwise.
        queue = (EvidenceQueue(self.clients.client("sqs"), self.settings.evidence_queue)
                 if self.settings.evidence_queue else None)
        return SessionWorkflow(store=self.session_store,
                               attendance_store=self.attendance, face_search=self.face_search,
                               videos=self.videos, roster=self.students,
                               settings=self.settings, logger=self.logger,
                               classes=self.classes, access=self.access,
                               evidence_queue=queue, crops=self.evidence_files,
                               photos=self.photos, converter=self.converter,
                               scratch=self.face_grouping)

    @cached_property
    def converter(self):
        """MediaConvert for recordings Rekognition cannot read; None when the stage
        has no conversion role (such a recording then fails saying so)."""
        s = self.settings
        if not s.conversion_role:
            return None
        return Converter(self.clients.client("mediaconvert"), bucket=s.videos_bucket,
                         role_name=s.conversion_role, sts=self.clients.client("sts"),
                         stage=s.stage)

    @cached_property
    def multipart(self):
        """Resumable uploads of session videos (the sessions table holds the live one)."""
        s = self.settings
        return MultipartUploads(sessions_table=self.clients.table(s.sessions_table),
                                s3_client=self.clients.client("s3"), bucket=s.videos_bucket,
                                max_bytes=s.max_video_bytes)

    # -- evidence crops and retention --------------------------------------------
    @cached_property
    def evidence_files(self):
        return EvidenceFiles(self.clients.client("s3"), self.settings.videos_bucket)

    @cached_property
    def face_grouping(self):
        """Merging a session's unrecognised entries that are one face (and their
        runs' scratch collections)."""
        return FaceGrouping(
            rekognition=self.clients.client("rekognition"),
            face_collection=self.settings.face_collection,
            threshold=self.settings.match_threshold,
            merges=StrangerMerges(self.clients.table(self.settings.sessions_table)),
            logger=self.logger)

    @cached_property
    def evidence(self):
        s3, bucket = self.clients.client("s3"), self.settings.videos_bucket
        return Evidence(sessions=self.session_store, attendance=self.attendance,
                        files=self.evidence_files,
                        open_video=lambda key: S3File(s3, bucket, key), logger=self.logger,
                        grouping=self.face_grouping)

    @cached_property
    def retention(self):
        s = self.settings
        return Retention(store=self.session_store,
                         videos=self.videos, crops=self.evidence_files,
                         video_days=s.video_retention_days, crop_days=s.crop_retention_days,
                         logger=self.logger)

    @cached_property
    def reports(self):
        return Reports(self.sessions, self.attendance, self.students, self.settings,
                       access=self.access, classes=self.classes)

    # -- classes, access, accounts ------------------------------------------------
    @cached_property
    def classes(self):
        return Classes(ClassStore(self.clients.table(self.settings.classes_table)),
                       Memberships(self.clients.table(self.settings.members_table),
                                   students_table=self.settings.students_table),
                       students=self.students, users=self.users,
                       sessions_of_class=self.session_store.class_has_sessions)

    @cached_property
    def access(self):
        return Access(self.classes)

    @cached_property
    def accounts(self):
        return Accounts(self.users)
