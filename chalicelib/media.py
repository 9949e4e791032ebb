"""What a recording holds: container, video codec, size, frame rate, duration.

:func:`probe` reads only container headers, never a frame, through a
``read(offset, length)`` callable (ranged S3 GETs in Lambda), so a 4 GB upload
costs a few small reads and no decoder is needed where the face search runs.

* MP4 / MOV (ISO base media): top-level boxes are walked by their sizes to
  ``moov`` (wherever it is, also after ``mdat``); the first ``vide`` track
  gives the sample entry's four-character code, its width and height, the
  media duration, and the frame rate from ``stts``.
* AVI (RIFF): ``avih`` gives the frame time, frame count and size; the first
  ``vids`` stream's ``strf`` the compression code.
* WebM / Matroska (EBML): ``Info`` gives the duration, the first video
  ``TrackEntry`` the codec id, size and frame duration.

Anything else, a file with no video track, or headers that contradict the
file's size is a :class:`MediaProblem` whose text a teacher can act on.
"""
import dataclasses
import struct

#: Rekognition Video analyses stored videos up to this long.
MAX_DURATION_S = 6 * 3600
#: The largest header block read at once (moov of a long recording is a few MB).
MAX_HEADER_BYTES = 64 * 1024 * 1024

_ISO_CODECS = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc",
               b"vp09": "vp9", b"vp08": "vp8", b"av01": "av1", b"mp4v": "mpeg4",
               b"jpeg": "mjpeg", b"mjpa": "mjpeg", b"apch": "prores", b"apcn": "prores",
               b"apcs": "prores", b"apco": "prores", b"ap4h": "prores"}
_AVI_CODECS = {b"H264": "h264", b"X264": "h264", b"AVC1": "h264", b"DAVC": "h264",
               b"XVID": "mpeg4", b"DIVX": "mpeg4", b"DX50": "mpeg4", b"FMP4": "mpeg4",
               b"MP4V": "mpeg4", b"MJPG": "mjpeg", b"HEVC": "hevc", b"H265": "hevc",
               b"VP90": "vp9", b"AV01": "av1"}
_MKV_CODECS = {"V_MPEG4/ISO/AVC": "h264", "V_MPEGH/ISO/HEVC": "hevc", "V_VP9": "vp9",
               "V_VP8": "vp8", "V_AV1": "av1", "V_MPEG4/ISO/ASP": "mpeg4",
               "V_MJPEG": "mjpeg"}
#: Codec names as a teacher reads them.
CODEC_NAMES = {"h264": "H.264", "hevc": "HEVC (H.265)", "vp9": "VP9", "vp8": "VP8",
               "av1": "AV1", "mpeg4": "MPEG-4 Part 2", "mjpeg": "Motion JPEG",
               "prores": "ProRes"}


class MediaProblem(ValueError):
    """The file is not a recording Rollcall can use; ``str()`` is for the teacher."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    container: str          # "mp4", "mov", "avi", "webm", "mkv"
    codec: str              # "h264", "hevc", "vp9", ... or the raw code if unknown
    width: int
    height: int
    fps: float | None
    duration_s: float | None

    @property
    def codec_name(self):
        return CODEC_NAMES.get(self.codec, self.codec)

    def face_search_ready(self):
        """True if Rekognition Video reads the file as it is: H.264 in MP4 or MOV."""
        return self.codec == "h264" and self.container in ("mp4", "mov")

    def as_dict(self):
        return {"container": self.container, "codec": self.codec,
                "codec_name": self.codec_name, "width": self.width, "height": self.height,
                "fps": None if self.fps is None else round(self.fps, 3),
                "duration_s": None if self.duration_s is None else round(self.duration_s, 3)}


def probe(read, size):
    """The :class:`VideoInfo` of a file of ``size`` bytes read through ``read``."""
    if size < 16:
        raise MediaProblem("The file is too short to be a video. Upload the recording again.")
    head = read(0, min(size, 64))
    try:
        if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
            info = _probe_iso(read, size)
        elif head[:4] == b"RIFF" and head[8:12] == b"AVI ":
            info = _probe_avi(read, size)
        elif head[:4] == b"\x1a\x45\xdf\xa3":
            info = _probe_ebml(read, size)
        else:
            raise MediaProblem("The file is not a video Rollcall can read (MP4, MOV, AVI, "
                               "WebM or MKV).")
    except (struct.error, IndexError, ValueError) as error:
        if isinstance(error, MediaProblem):
            raise
        raise MediaProblem("The video file is damaged (its headers cannot be read). "
                           "Export or copy the recording again and upload it.") from None
    if info.duration_s is not None and info.duration_s > MAX_DURATION_S:
        hours = info.duration_s / 3600
        raise MediaProblem(f"The recording is {hours:.1f} hours long; face search takes at "
                           "most 6 hours. Split it and upload each part in its own session.")
    if info.width <= 0 or info.height <= 0:
        raise MediaProblem("The video track has no picture size; the file is damaged. "
                           "Export the recording again and upload it.")
    return info


# -- MP4 / MOV ----------------------------------------------------------------------------
def _boxes(data, start=0, end=None):
    """``(type, payload_start, payload_end)`` of the boxes in ``data[start:end]``."""
    end = len(data) if end is None else end
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[at + 8:at + 16])[0], 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise ValueError("box overruns its parent")
        yield kind, at + header, at + size
        at += size


def _child(data, start, end, kind):
    for found, child_start, child_end in _boxes(data, start, end):
        if found == kind:
            return child_start, child_end
    return None


def _find_moov(read, size):
    at = 0
    while at + 8 <= size:
        header = read(at, 16)
        box_size, kind = struct.unpack(">I4s", header[:8])
        header_len = 8
        if box_size == 1:
            box_size, header_len = struct.unpack(">Q", header[8:16])[0], 16
        elif box_size == 0:
            box_size = size - at
        if box_size < header_len or at + box_size > size:
            raise MediaProblem("The video file is cut off or damaged (its boxes overrun the "
                               "file). Upload the whole recording again.")
        if kind == b"moov":
            if box_size > MAX_HEADER_BYTES:
                raise MediaProblem("The video's index is too large to read.")
            return read(at + header_len, box_size - header_len)
        at += box_size
    raise MediaProblem("The video file has no index (moov box): it is cut off or was not "
                       "finished recording. Upload the whole recording again.")


def _probe_iso(read, size):
    brand = read(8, 4) if read(4, 4) == b"ftyp" else b"qt  "
    container = "mov" if brand == b"qt  " else "mp4"
    moov = _find_moov(read, size)
    movie_duration = None
    mvhd = _child(moov, 0, len(moov), b"mvhd")
    if mvhd:
        movie_duration = _iso_duration(moov, mvhd[0])
    for kind, start, end in _boxes(moov):
        if kind != b"trak":
            continue
        mdia = _child(moov, start, end, b"mdia")
        if not mdia:
            continue
        hdlr = _child(moov, *mdia, b"hdlr")
        if not hdlr or moov[hdlr[0] + 8:hdlr[0] + 12] != b"vide":
            continue
        duration = movie_duration
        mdhd = _child(moov, *mdia, b"mdhd")
        timescale = None
        if mdhd:
            timescale, media_duration = _iso_timescale_duration(moov, mdhd[0])
            if timescale:
                duration = media_duration / timescale
        minf = _child(moov, *mdia, b"minf")
        stbl = minf and _child(moov, *minf, b"stbl")
        stsd = stbl and _child(moov, *stbl, b"stsd")
        if not stsd:
            raise MediaProblem("The video track has no sample description; the file is "
                               "damaged. Export the recording again and upload it.")
        entry = stsd[0] + 8  # version/flags, entry count
        fourcc = moov[entry + 4:entry + 8]
        width, height = struct.unpack(">HH", moov[entry + 32:entry + 36])
        fps = None
        stts = _child(moov, *stbl, b"stts")
        if stts and timescale:
            count = struct.unpack(">I", moov[stts[0] + 4:stts[0] + 8])[0]
            samples = ticks = 0
            for i in range(min(count, 100000)):
                n, delta = struct.unpack(">II", moov[stts[0] + 8 + 8 * i:stts[0] + 16 + 8 * i])
                samples, ticks = samples + n, ticks + n * delta
            fps = samples * timescale / ticks if ticks else None
        codec = _ISO_CODECS.get(fourcc, fourcc.decode("latin-1").strip())
        return VideoInfo(container, codec, width, height, fps, duration)
    raise MediaProblem("The file has no video track (only sound?). Upload the video "
                       "recording of the class.")


def _iso_timescale_duration(data, at):
    version = data[at]
    if version == 1:
        return struct.unpack(">IQ", data[at + 20:at + 32])
    return struct.unpack(">II", data[at + 12:at + 20])


def _iso_duration(data, at):
    timescale, duration = _iso_timescale_duration(data, at)
    return duration / timescale if timescale else None


# -- AVI ----------------------------------------------------------------------------------
def _probe_avi(read, size):
    data = read(0, min(size, 1024 * 1024))  # hdrl comes first and is small
    frame_us = frames = width = height = 0
    codec = None
    for kind, start, end in _riff_chunks(data, 12, len(data)):
        if kind == b"LIST" and data[start:start + 4] == b"hdrl":
            for sub, s_start, s_end in _riff_chunks(data, start + 4, end):
                if sub == b"avih":
                    frame_us, = struct.unpack("<I", data[s_start:s_start + 4])
                    frames, = struct.unpack("<I", data[s_start + 16:s_start + 20])
                    width, height = struct.unpack("<II", data[s_start + 32:s_start + 40])
                elif sub == b"LIST" and data[s_start:s_start + 4] == b"strl" and codec is None:
                    codec = _avi_stream_codec(data, s_start + 4, s_end)
            break
    if codec is None:
        raise MediaProblem("The file has no video track (only sound?). Upload the video "
                           "recording of the class.")
    fps = 1e6 / frame_us if frame_us else None
    duration = frames * frame_us / 1e6 if frame_us and frames else None
    return VideoInfo("avi", codec, width, height, fps, duration)


def _avi_stream_codec(data, start, end):
    is_video = False
    for kind, c_start, c_end in _riff_chunks(data, start, end):
        if kind == b"strh":
            is_video = data[c_start:c_start + 4] == b"vids"
        elif kind == b"strf" and is_video:
            compression = data[c_start + 16:c_start + 20]
            return _AVI_CODECS.get(compression.upper(), compression.decode("latin-1").strip())
    return None


def _riff_chunks(data, start, end):
    at = start
    while at + 8 <= end:
        kind, length = struct.unpack("<4sI", data[at:at + 8])
        chunk_end = at + 8 + length
        if chunk_end > end:
            if kind == b"LIST" and data[at + 8:at + 12] == b"movi":
                return  # the frames: headers are all before them
            chunk_end = end
        yield kind, at + 8, chunk_end
        at = chunk_end + (length & 1)


# -- WebM / Matroska ----------------------------------------------------------------------
_SEGMENT, _INFO, _TRACKS, _TRACK_ENTRY, _CLUSTER = (0x18538067, 0x1549A966, 0x1654AE6B,
                                                    0xAE, 0x1F43B675)


def _probe_ebml(read, size):
    data = read(0, min(size, 4 * 1024 * 1024))  # headers come before the clusters
    doc_type = "mkv"
    timecode_scale, duration_ticks, track = 1_000_000, None, None
    for element, start, end in _ebml_elements(data, 0, len(data)):
        if element == 0x1A45DFA3:
            for sub, s, e in _ebml_elements(data, start, end):
                if sub == 0x4282 and data[s:e] == b"webm":
                    doc_type = "webm"
        elif element == _SEGMENT:
            for sub, s, e in _ebml_elements(data, start, end):
                if sub == _INFO:
                    for field, fs, fe in _ebml_elements(data, s, e):
                        if field == 0x2AD7B1:
                            timecode_scale = int.from_bytes(data[fs:fe], "big")
                        elif field == 0x4489:
                            duration_ticks = struct.unpack(">f" if fe - fs == 4 else ">d",
                                                           data[fs:fe])[0]
                elif sub == _TRACKS:
                    for entry, es, ee in _ebml_elements(data, s, e):
                        if entry == _TRACK_ENTRY and track is None:
                            track = _ebml_video_track(data, es, ee)
                elif sub == _CLUSTER:
                    break
    if track is None:
        raise MediaProblem("The file has no video track (only sound?). Upload the video "
                           "recording of the class.")
    codec_id, width, height, frame_ns = track
    duration = duration_ticks * timecode_scale / 1e9 if duration_ticks else None
    fps = 1e9 / frame_ns if frame_ns else None
    return VideoInfo(doc_type, _MKV_CODECS.get(codec_id, codec_id), width, height, fps,
                     duration)


def _ebml_video_track(data, start, end):
    kind, codec_id, width, height, frame_ns = None, "", 0, 0, None
    for field, s, e in _ebml_elements(data, start, end):
        if field == 0x83:
            kind = int.from_bytes(data[s:e], "big")
        elif field == 0x86:
            codec_id = data[s:e].decode("ascii", "replace")
        elif field == 0x23E383:
            frame_ns = int.from_bytes(data[s:e], "big")
        elif field == 0xE0:
            for sub, vs, ve in _ebml_elements(data, s, e):
                if sub == 0xB0:
                    width = int.from_bytes(data[vs:ve], "big")
                elif sub == 0xBA:
                    height = int.from_bytes(data[vs:ve], "big")
    return (codec_id, width, height, frame_ns) if kind == 1 else None


def _ebml_vint(data, at, keep_marker):
    first = data[at]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        raise ValueError("bad EBML number")
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[at + 1:at + length]:
        value = (value << 8) | byte
    unknown = not keep_marker and value == (1 << (7 * length)) - 1
    return value, length, unknown


def _ebml_elements(data, start, end):
    at = start
    while at < end:
        element, id_len, _ = _ebml_vint(data, at, keep_marker=True)
        size, size_len, unknown = _ebml_vint(data, at + id_len, keep_marker=False)
        body = at + id_len + size_len
        body_end = end if unknown else min(body + size, end)
        yield element, body, body_end
        at = body_end
