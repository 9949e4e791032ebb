"""Who may see and change what. Every route asks here before it reads.

* An admin sees and changes everything.
* A teacher sees and changes only the classes whose ``teachers`` list names
  them, those classes' sessions and attendance, and the people enrolled in
  those classes (their list, photos and history, the history restricted to
  those classes). A session without a class (an "everyone" session, or one
  from before classes existed) is the admins'.
* Anything a user may not see answers 404 exactly as if it did not exist
  (guessing another class's session id tells nothing); only an action a
  user can see but may not do (deleting, as a teacher) is a 403.
"""
from chalicelib.errors import NotAllowed, NotFound, UnknownSession, UnknownStudent

ADMIN = "admin"


def is_admin(user):
    return user["role"] == ADMIN


def require_admin(user):
    if not is_admin(user):
        raise NotAllowed("Only an administrator may do this.", code="forbidden")


def _no_class():
    return NotFound("There is no such class (it may have been deleted).",
                    code="class_not_found")


def _no_session():
    return UnknownSession("There is no such session (it may have been deleted).")


def _no_student(student_id):
    return UnknownStudent(f"There is no student with ID {student_id}.")


def teaches(user, class_item):
    return class_item is not None and user["email"] in (class_item.get("teachers") or [])


class Access:
    def __init__(self, classes):
        self._classes = classes  # chalicelib.classes.Classes

    def class_for(self, user, class_id):
        """The class item if ``user`` may see it, else 404."""
        item = self._classes.store.get(class_id)
        if item is None or not (is_admin(user) or teaches(user, item)):
            raise _no_class()
        return item

    def check_session(self, user, session_item):
        """Nothing if ``user`` may see the session, else 404 (as if it did not exist)."""
        if is_admin(user):
            return
        class_id = session_item.get("class_id")
        if not class_id or not teaches(user, self._classes.store.get(class_id)):
            raise _no_session()

    def class_ids(self, user):
        """The ids of the classes a teacher teaches (None for an admin: all)."""
        if is_admin(user):
            return None
        ids = self._classes.members.class_ids_of_teacher(user["email"])
        classes = self._classes.store.get_many(ids)
        return {cid for cid, item in classes.items() if teaches(user, item)}

    def check_student(self, user, student_id):
        """Nothing if ``user`` may see the person, else 404.

        A teacher may see someone enrolled in one of their classes.
        """
        if is_admin(user):
            return None
        mine = self.class_ids(user)
        if not mine or not self._classes.members.enrolled(mine, [student_id]):
            raise _no_student(student_id)
        return mine
