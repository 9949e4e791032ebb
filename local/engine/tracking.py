"""Follow faces from sample to sample so each person is described a few times.

Describing a face (the ResNet) and above all searching a whole frame for
24 px faces cost tens to thousands of times what following a known face
with template matching does. So, per segment of video:

- every ``full_scan_interval_s`` the whole frame is searched, every
  ``scan_interval_s`` in between only the regions that changed since the
  previous scan (compared at equal overall brightness, so the room's light
  swinging is no change), away from known faces (a new arrival changes
  pixels; a still wall costs nothing). A search is MTCNN's (``mtcnn.py``:
  its first network reads the frame halved where dlib's HOG would need it
  enlarged 3 times for 24 px faces); each proposal that is not a known face
  counts only if dlib's HOG finds a face in its region, enlarged to the
  HOG's comfortable size, so what is tracked, aligned and described is
  dlib's detection as before. A place dlib rejected is not searched again
  while it looks the same (until the next whole-frame search). A
  whole-frame search also has dlib look at every known face again (a fresh
  box, a chip candidate);
- a new track is traced *back* through the samples since the previous scan
  (its template in each older frame, MTCNN in the region where the match is
  weak), so its first sighting is accurate to one sample interval, not one
  scan interval;
- between scans each track follows its face by normalised cross-correlation
  of a small template in a window around its last box; when the match is
  weak (the face turned, looked down, the light changed), MTCNN looks in
  that region; not found for more than ``max_misses`` samples ends the
  track;
- every dlib detection of a track offers its aligned chip (a face under 60 px
  aligned on an enlarged copy of its region); the track keeps its
  ``descriptors_per_track`` best chips (large, sharp, frontal, confident) and
  describes them when it ends: only the first when, with the collection at
  hand, it is clearly someone or clearly nobody, none when the face looks the
  same as one already described in the same place (its descriptors are reused).

Tracks become persons (one ``Person.Index`` for the whole video) in
``persons.py``, after every segment is done.
"""
from collections import deque

import cv2
import numpy as np

from local.engine import face_engine, mtcnn, persons
from local.engine.boxes import iou, overlapping_pairs

_TEMPLATE_PX = 32          # templates are shrunk to this width (speed)
_FOLLOW_MIN_SCORE = 0.6    # correlation below this means "look again with MTCNN"
_SEARCH_MARGIN = 0.5       # search window: the box grown by half a face each side
# Change detection between scans, on a blurred quarter-size copy of the frame.
_CHANGE_SCALE = 4
_CHANGE_LEVEL = 18         # gray levels; H.264 noise on a still wall stays under ~6
_KNOWN_MARGIN = 1.0        # ignore changes this close (in face sizes) to a known face
_MIN_CHANGE_AREA = 6       # changed pixels at quarter size (~100 px at full size)
# px around a change, so a face at its edge is whole:
# a quarter of the change's size (someone who appeared or looked up changed at
# least their face, usually head and shoulders), 16 to 48
_REGION_MARGIN = 48
_REGION_MARGIN_MIN = 16
_MAX_CHANGED = 0.25        # over this share of changed pixels: scan the whole frame
_MAX_CHANGED_REGIONS = 0.5 # ... or when the regions to search cover this much


_CONFIRM_SIZES = (90, 80, 110)  # face px of the looks at a proposal
_CONFIRM_MARGIN = 0.3      # around it, in face widths (its place is known to ~0.1)
_CONFIRM_THRESHOLD = -0.25 # HOG score that confirms a proposal (two detectors agree)
_SAME_LOOK = 0.95          # correlation of two looks at a place that are "the same pixels"
_REJECTED_KEPT = 64        # proposals dlib did not confirm, remembered per segment
_CLEAR_MATCH = 0.45         # descriptor distances that need no second frame:
_CLEAR_STRANGER = 0.72      # (same person 0.18-0.55, different 0.61+ on the photos)
_SAME_CHIP = 0.95           # chip correlation above which a face is "the same as before"
_DESCRIBED_KEPT = 256       # described faces remembered per segment


def _unit_patch(gray, size):
    """``gray`` shrunk to size x size, zero-mean and unit-norm, as one vector
    (a dot product of two is their correlation, whatever the light's level);
    None if it is flat."""
    patch = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
    patch = patch.astype(np.float32).ravel()
    patch -= patch.mean()
    norm = float(np.linalg.norm(patch))
    return patch / norm if norm > 1e-3 else None


def _chip_key(chip):
    """An aligned chip, 32x32 gray, for correlation (zeros if flat)."""
    key = _unit_patch(cv2.cvtColor(np.asarray(chip), cv2.COLOR_RGB2GRAY), 32)
    return key if key is not None else np.zeros(32 * 32, np.float32)


def _look_key(gray, box):
    """The pixels in ``box``, 16x16, for correlation (None if flat or outside)."""
    l, t, r, b = _clip_box(box, gray.shape)
    if r - l < 4 or b - t < 4:
        return None
    return _unit_patch(gray[t:b, l:r], 16)


def _same_look(key, other_key):
    return key is not None and float(np.dot(key, other_key)) >= _SAME_LOOK


def _merge_boxes(boxes):
    """Merge overlapping boxes until none overlap (so no pixel is searched twice)."""
    boxes = [list(b) for b in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return [tuple(b) for b in boxes]


def _clip_box(box, shape):
    h, w = shape[:2]
    l, t, r, b = box
    return (max(0, int(round(l))), max(0, int(round(t))),
            min(w, int(round(r))), min(h, int(round(b))))


class Sightings:
    """A finished track's sightings, read as a list of ``(timestamp_ms, (left,
    top, right, bottom), confidence)`` tuples, kept as one row of 6 floats each.

    An hour of a lecture hall is a quarter of a million sightings: as tuples
    of Python numbers (~300 bytes each) they grew the endpoint's memory with
    the video's length; as rows, 48 bytes each, and they cross from the
    workers in one piece."""

    __slots__ = ("_rows",)

    def __init__(self, entries=()):
        rows = [(t_ms, *box, conf) for t_ms, box, conf in entries]
        self._rows = np.asarray(rows, np.float64).reshape(-1, 6)

    def __len__(self):
        return len(self._rows)

    def _entry(self, row):
        return (int(row[0]), (float(row[1]), float(row[2]), float(row[3]), float(row[4])),
                float(row[5]))

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._entry(row) for row in self._rows[i]]
        return self._entry(self._rows[i])

    def __iter__(self):
        for row in self._rows.tolist():
            yield int(row[0]), tuple(row[1:5]), row[5]

    def __eq__(self, other):
        return list(self) == list(other)

    def extend(self, other):
        more = other._rows if isinstance(other, Sightings) else Sightings(other)._rows
        self._rows = np.concatenate([self._rows, more])

    def __repr__(self):
        return f"Sightings({len(self)} rows)"


class Track:
    """One continuous appearance of one face."""

    def __init__(self, detection, k, t_ms):
        self.box = detection.box
        self.confidence = face_engine.confidence(detection.score)
        self.entries = []               # (timestamp ms, box, confidence)
        self.first_k = self.last_k = k
        self.misses = 0
        self.template = None
        self.template_scale = 1.0
        self.chips = []                 # (quality, k, chip, face px), best first

    @property
    def size(self):
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])

    def see(self, k, t_ms, box, confidence=None):
        self.box = box
        if confidence is not None:
            self.confidence = confidence
        self.entries.append((t_ms, tuple(float(round(v, 1)) for v in box), self.confidence))
        self.first_k = min(self.first_k, k)
        self.last_k = max(self.last_k, k)
        self.misses = 0


class SegmentTracker:
    """Tracks the faces of one run of consecutive samples (see the module doc)."""

    def __init__(self, settings, first_k=0, cut_before=None, cut_after=False, reference=None,
                 known=None):
        self.settings = settings
        self.reference = None if reference is None or not len(reference) else \
            np.asarray(reference, np.float32).reshape(-1, 128)
        self.first_k = first_k
        # whether a neighbouring segment (another worker) continues the video
        self.cut_before = first_k > 0 if cut_before is None else cut_before
        self.cut_after = cut_after
        self.scan_every = max(1, int(round(settings.scan_interval_s * settings.sample_fps)))
        full = max(settings.full_scan_interval_s, settings.scan_interval_s)
        self.full_every = self.scan_every * max(1, int(round(full / settings.scan_interval_s)))
        self._scan_small = None         # the last scan's frame, small and blurred
        self._scan_k = None             # sample of the last look for new faces
        self._full_k = None             # ... and of the last whole-frame search
        self.active = []
        self.done = []
        # (box, chip key, descriptors, sizes) of closed tracks: this segment's,
        # and ``known`` ones from segments already done (described_faces())
        self._described = [(tuple(b), np.asarray(key, np.float32),
                            [np.asarray(d, np.float32) for d in ds], list(sz))
                           for b, key, ds, sz in (known or [])][-_DESCRIBED_KEPT:]
        # proposals dlib did not confirm: (box, look key)
        self._rejected = deque(maxlen=_REJECTED_KEPT)
        # frames since the last scan, for tracing new tracks backwards
        self.history = deque(maxlen=self.scan_every + 1)
        self.last = None                # the last sample, if it was not a scan

    # -- per sample ----------------------------------------------------------------

    def add(self, k, t_s, rgb):
        t_ms = int(round(t_s * 1000))
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        # by distance from the previous look, not k's remainder: a video whose
        # first frame comes late, or with gaps, skips sample numbers
        scanned = self._scan_k is None or k - self._scan_k >= self.scan_every
        if scanned:
            self._scan(k, t_ms, rgb, gray)
        else:
            for track in list(self.active):
                self._follow_or_verify(track, k, t_ms, rgb, gray)
        self._end_lost(k)
        if scanned:
            self.history.clear()
        self.history.append((k, t_ms, rgb, gray))
        self.last = None if scanned else (k, t_ms, rgb, gray)

    def _scan(self, k, t_ms, rgb, gray):
        detections, full = self._scan_detections(k, rgb, gray)
        pairs = sorted(((iou(tr.box, d.box), i, j) for i, tr in enumerate(self.active)
                        for j, d in enumerate(detections)), reverse=True)
        used_t, used_d = set(), set()
        for overlap, i, j in pairs:
            if overlap < 0.3 or i in used_t or j in used_d:
                continue
            used_t.add(i)
            used_d.add(j)
            self._confirm(self.active[i], detections[j], k, t_ms, rgb, gray)
        for i, track in enumerate(list(self.active)):
            if i not in used_t:
                self._follow_or_verify(track, k, t_ms, rgb, gray, force_verify=full)
        self._start_tracks([d for j, d in enumerate(detections) if j not in used_d],
                           k, t_ms, rgb, gray)

    def _scan_detections(self, k, rgb, gray):
        """New faces found by this scan, and whether the whole frame was searched.

        The whole frame every ``full_scan_interval_s`` (and at a segment's
        start); otherwise only where the picture changed since the previous
        scan, outside known faces: someone arriving or turning to the camera
        changes pixels, an empty wall does not. If much of the picture changed
        (camera moved, lights), the whole frame is searched anyway.

        MTCNN proposes where faces may be (``mtcnn.py``: its first network
        reads the frame halved where dlib's HOG would read it enlarged 3
        times); faces already followed are left to following (a whole-frame
        scan verifies each of them, ``_scan``); each other proposal counts
        only if dlib finds a face in its region (:meth:`_confirmed`)."""
        small = cv2.GaussianBlur(cv2.resize(gray, None, fx=1 / _CHANGE_SCALE,
                                            fy=1 / _CHANGE_SCALE,
                                            interpolation=cv2.INTER_AREA), (5, 5), 0)
        previous, self._scan_small = self._scan_small, small
        self._scan_k = k
        regions = None
        if previous is not None and k - self._full_k < self.full_every:
            regions = self._changed_regions(small, previous, gray.shape)
        full = regions is None
        if full:
            self._full_k = k
            self._rejected.clear()      # a whole-frame search looks at everything again
            h, w = gray.shape[:2]
            regions = [(0, 0, w, h)]
        known = [tr.box for tr in self.active]
        proposals = []
        for x0, y0, x1, y1 in regions:
            local = [(l - x0, t - y0, r - x0, b - y0) for l, t, r, b in known]
            for l, t, r, b, _ in mtcnn.propose(rgb[y0:y1, x0:x1], self.settings.min_face_px,
                                               known=local):
                proposals.append(mtcnn.dlib_box((l + x0, t + y0, r + x0, b + y0)))
        fresh = [p for p in proposals if not any(iou(box, p) >= 0.3 for box in known)]
        return self._confirmed(gray, fresh), full

    def _confirmed(self, gray, proposals):
        """The faces dlib finds at the proposed boxes.

        A face's HOG score depends on where its size falls between the
        detector's pyramid levels: a 50 px face can score 0.1 at one
        enlargement and -0.1 at another. So a proposal's region is searched
        scaled so the face is ~90 px, else ~80, else ~110 (the second look
        has pyramid levels too). One face can be proposed by several
        overlapping boxes: only the first is looked at. A proposal where dlib
        found nothing before is not looked at again, until the next
        whole-frame search, while the pixels at that earlier box are still
        the ones it rejected (a face turned away or looking down is proposed
        at every scan, its box a pixel or two off each time)."""
        out, looked = [], []
        for box in proposals:
            if any(iou(box, other) >= 0.5 for other in looked):
                continue
            looked.append(box)
            if any(iou(box, other) >= 0.5 and _same_look(_look_key(gray, other), other_key)
                   for other, other_key in self._rejected):
                continue
            key = _look_key(gray, box)
            for target in _CONFIRM_SIZES:
                again = [c for c in face_engine.detect_in_region(
                    gray, box, target, margin=_CONFIRM_MARGIN, adjust_threshold=_CONFIRM_THRESHOLD)
                         if iou(c.box, box) >= 0.3]
                if again:
                    found = max(again, key=lambda c: c.score)
                    if not any(iou(found.box, d.box) >= 0.5 for d in out):
                        out.append(found)
                    break
            else:
                if key is not None:
                    self._rejected.append((box, key))
        return out

    def _changed_regions(self, small, previous, shape):
        """Full-resolution boxes around changed pixels, or None for "scan it all"."""
        # the room's light swings: compare at equal overall brightness, so a
        # dimmed hall is not "changed everywhere" (a whole-frame search)
        gain = float(small.mean()) / max(1.0, float(previous.mean()))
        if abs(gain - 1.0) > 0.01:
            previous = cv2.convertScaleAbs(previous, alpha=gain)
        mask = (cv2.absdiff(small, previous) > _CHANGE_LEVEL).astype(np.uint8)
        s = float(_CHANGE_SCALE)
        for track in self.active:                  # known faces are followed already
            l, t, r, b = track.box
            m = _KNOWN_MARGIN * max(r - l, b - t)
            mask[max(0, int((t - m) / s)):max(0, int((b + m) / s) + 1),
                 max(0, int((l - m) / s)):max(0, int((r + m) / s) + 1)] = 0
        if mask.mean() > _MAX_CHANGED:
            return None
        # opening drops slivers (edges of things that shifted a pixel or two);
        # a face, even 40 px, is 10 px across here and survives it
        kernel = np.ones((3, 3), np.uint8)
        mask = cv2.dilate(cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel), kernel, iterations=2)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        h, w = shape[:2]
        boxes = []
        for x, y, bw, bh, area in stats[1:count]:
            if area < _MIN_CHANGE_AREA:
                continue
            m = min(_REGION_MARGIN, max(_REGION_MARGIN_MIN, 0.25 * max(bw, bh) * s))
            boxes.append([max(0, int(x * s - m)), max(0, int(y * s - m)),
                          min(w, int((x + bw) * s + m)), min(h, int((y + bh) * s + m))])
        boxes = _merge_boxes(boxes)
        if sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes) > _MAX_CHANGED_REGIONS * w * h:
            return None
        return boxes

    def _start_tracks(self, detections, k, t_ms, rgb, gray):
        for det in detections:
            if any(iou(tr.box, det.box) > 0.3 for tr in self.active):
                continue
            track = Track(det, k, t_ms)
            self._confirm(track, det, k, t_ms, rgb, gray)
            self._trace_back(track)
            self.active.append(track)

    def _confirm(self, track, det, k, t_ms, rgb, gray):
        """A dlib detection of the track: new box, template and chip candidate."""
        track.see(k, t_ms, det.box, face_engine.confidence(det.score))
        self._set_template(track, gray)
        self._offer_chip(track, det, k, rgb, gray)

    def _follow_or_verify(self, track, k, t_ms, rgb, gray, force_verify=False):
        box, score = self._follow(track, gray)
        if box is not None and score >= _FOLLOW_MIN_SCORE and not force_verify:
            track.see(k, t_ms, box)
            return
        guess = box if box is not None and score >= 0.3 else track.box
        if not force_verify:
            # the face changed (turned, looked down, lit otherwise): MTCNN in
            # the region says whether it is still there, at a fraction of
            # dlib's cost; it finds small and turned faces dlib does not, so
            # where it finds none, neither would dlib
            near = self._mtcnn_near(rgb, guess, track.box)
            if near is None:
                track.misses += 1
            else:
                track.see(k, t_ms, near)
                self._set_template(track, gray)
            return
        found = face_engine.detect_in_region(gray, guess)
        if not found and guess is not track.box:
            found = face_engine.detect_in_region(gray, track.box)
        if found:
            det = max(found, key=lambda d: iou(d.box, guess) + 1e-3 * d.score)
            self._confirm(track, det, k, t_ms, rgb, gray)
        else:
            track.misses += 1

    @staticmethod
    def _mtcnn_near(rgb, guess, last, margin=0.6):
        """The face MTCNN finds near ``guess`` as a dlib-like box, if it is
        the same face as ``last`` (overlapping it, about as big), else None."""
        found = mtcnn.find_near(rgb, guess, margin)
        if found is None:
            return None
        box = mtcnn.dlib_box(found[:4])
        size, last_size = box[2] - box[0], max(last[2] - last[0], 1.0)
        if iou(box, last) < 0.2 or not 0.7 <= size / last_size <= 1.4:
            return None
        return tuple(float(v) for v in box)

    def _end_lost(self, k):
        for track in list(self.active):
            if track.misses > self.settings.max_misses:
                self.active.remove(track)
                self._close(track)
        # two tracks on one face (one jumped to a neighbour, or a face was
        # found twice): the younger one ends, the face keeps its first index
        partners = {}
        for i, j in overlapping_pairs([t.box for t in self.active], 0.5):
            partners.setdefault(i, []).append(self.active[j])
            partners.setdefault(j, []).append(self.active[i])
        ended = []          # youngest first, as they are closed
        for i in sorted(partners, key=lambda i: (-self.active[i].first_k, i)):
            young = self.active[i]
            if any(old.first_k <= young.first_k and old not in ended for old in partners[i]):
                ended.append(young)
        for young in ended:
            self.active.remove(young)
            self._close(young)

    # -- following ---------------------------------------------------------------

    def _set_template(self, track, gray):
        l, t, r, b = _clip_box(track.box, gray.shape)
        if r - l < 4 or b - t < 4:
            track.template = None
            return
        patch = gray[t:b, l:r]
        scale = min(1.0, _TEMPLATE_PX / float(r - l))
        if scale < 1.0:
            patch = cv2.resize(patch, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        track.template, track.template_scale = patch, scale

    def _follow(self, track, gray):
        """The best template match near the last box: (box, score) or (None, 0)."""
        return self._match(track.template, track.template_scale, track.box, gray)

    @staticmethod
    def _match(template, s, box, gray):
        """The best match of ``template`` (shrunk by ``s``) near ``box``: (box, score)."""
        if template is None:
            return None, 0.0
        l, t, r, b = box
        w, h = r - l, b - t
        m = _SEARCH_MARGIN * max(w, h)
        x0, y0, x1, y1 = _clip_box((l - m, t - m, r + m, b + m), gray.shape)
        window = gray[y0:y1, x0:x1]
        if s < 1.0:
            window = cv2.resize(window, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        th, tw = template.shape[:2]
        if window.shape[0] < th or window.shape[1] < tw:
            return None, 0.0
        result = cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED)
        _, score, _, (mx, my) = cv2.minMaxLoc(result)
        if not np.isfinite(score):
            return None, 0.0
        nl, nt = x0 + mx / s, y0 + my / s
        return (nl, nt, nl + w, nt + h), float(score)

    def _trace_back(self, track):
        """Follow a new track backwards through the frames since the last scan.

        As forwards: the face's template first (a strong match is the face,
        as when following it), MTCNN in the region only when the match is
        weak, which is where the face was not yet there (a head still down,
        someone not yet in the seat): so a face seen in every earlier frame
        costs no detector run, and the frame it appeared in costs one."""
        box = track.box
        for k, t_ms, rgb, gray in reversed(self.history):
            if k >= track.first_k:
                continue
            followed, score = self._match(track.template, track.template_scale, box, gray)
            if followed is not None and score >= _FOLLOW_MIN_SCORE:
                box = followed
            else:
                # a wide margin: a face can move far in one sample interval
                box = self._mtcnn_near(rgb, box, box, margin=1.0)
                if box is None:
                    break
            track.entries.insert(0, (t_ms, tuple(float(round(v, 1)) for v in box),
                                     track.confidence))
            track.first_k = k

    # -- description --------------------------------------------------------------

    def _offer_chip(self, track, det, k, rgb, gray):
        """Keep the aligned chip if it is among the track's best few frames."""
        size = min(det.width, det.height)
        sharp = face_engine.quality(gray, det.box)["Sharpness"] / 100.0
        frontal = 1.0 if det.view == 0 else 0.6
        q = min(size, 150.0) * (0.5 + 0.5 * sharp) * frontal * (1.0 + min(det.score, 2.0) / 4)
        keep = self.settings.descriptors_per_track
        if len(track.chips) >= keep and q <= track.chips[-1][0] * 1.05:
            return
        chip = face_engine.chip_of(rgb, det.box)
        track.chips.append((q, k, chip, size))
        track.chips.sort(key=lambda c: -c[0])
        del track.chips[keep:]

    def _close(self, track, at_cut=False):
        chips = [c for _, _, c, _ in track.chips]
        sizes = [float(round(s, 1)) for _, _, _, s in track.chips]
        if at_cut or (self.cut_before and track.first_k <= self.first_k + self.settings.max_misses):
            # it may go on in the neighbouring segment, which describes it too:
            # half each, so a stitched track is still described only a few times
            chips = chips[:max(1, len(chips) // 2)]
            sizes = sizes[:len(chips)]
        descriptors = self._described_before(track, chips)
        if descriptors is None:
            descriptors = self._describe(chips, sizes)
            # one size per descriptor (often only the first chip is described):
            # persons.py lines the two up across a person's tracks
            sizes = sizes[:len(descriptors)]
            if chips:
                self._described.append((track.box, _chip_key(chips[0]), descriptors, sizes))
                del self._described[:-_DESCRIBED_KEPT]
        else:
            sizes = sizes[:1] * len(descriptors)
        track.entries.sort(key=lambda e: e[0])
        self.done.append({
            "first_k": track.first_k, "last_k": track.last_k,
            "first_ms": track.entries[0][0], "last_ms": track.entries[-1][0],
            "entries": Sightings(track.entries),
            "descriptors": [d.tolist() for d in descriptors],
            "sizes": sizes})
        track.chips = []
        track.template = None

    def _describe(self, chips, sizes):
        """Descriptors of a track's best chips; often the first is enough.

        With the collection at hand, a face big enough to be described
        reliably whose first descriptor is clearly someone (distance under
        _CLEAR_MATCH) or clearly nobody (over _CLEAR_STRANGER) needs no
        second opinion. Small faces get all their chips (their evidence is
        the mean of several, persons.person_distances) unless the first is
        clearly someone even with the small-face margin: at _CLEAR_MATCH
        plus the margin, 0.09+ under the nearest different-person video
        crop measured (0.568); never "clearly nobody" from one small face,
        whose distance to its own photo varies most."""
        if self.reference is None or len(chips) <= 1:
            return face_engine.describe_chips(chips)
        first = face_engine.describe_chips(chips[:1])
        nearest = float(face_engine.distances(first[0], self.reference).min())
        if min(sizes) < persons.RELIABLE_FACE_PX:
            if nearest + persons.SMALL_FACE_PENALTY <= _CLEAR_MATCH:
                return first
        elif nearest <= _CLEAR_MATCH or nearest >= _CLEAR_STRANGER:
            return first
        return first + face_engine.describe_chips(chips[1:])

    def _described_before(self, track, chips):
        """Descriptors of a face already described here that looks the same, or None.

        Someone who looked down and up again, in the same place, shows the
        same aligned face: if the new track's best chip correlates at
        _SAME_CHIP or more with a chip described in the same place, the
        earlier descriptors are reused (no ResNet pass). Different people's aligned chips correlate far less."""
        if not chips:
            return None
        key = _chip_key(chips[0])
        for box, other, descriptors, _ in reversed(self._described):
            if iou(box, track.box) >= 0.3 and float(np.dot(key, other)) >= _SAME_CHIP:
                return [d.copy() for d in descriptors]
        return None

    def described_faces(self):
        """The faces described here, as plain data another segment's tracker
        can take as ``known`` (a person still in their seat later in the
        video is then not described again)."""
        return [(tuple(float(v) for v in box), key, [d.tolist() for d in ds], list(sizes))
                for box, key, ds, sizes in self._described]

    def finish(self):
        """Close every track; the segment's tracks as plain, picklable dicts.

        If the segment's last sample was not a scan, it is scanned for faces
        that appeared since the previous one (and they are traced back), so
        nobody who arrived just before a segment cut is missed."""
        if self.last is not None:
            k, t_ms, rgb, gray = self.last
            found, _ = self._scan_detections(k, rgb, gray)  # not a scan sample: changes only
            self._start_tracks(found, k, t_ms, rgb, gray)
            self.last = None
        for track in self.active:
            self._close(track, at_cut=self.cut_after)
        self.active = []
        return [t for t in self.done if t["entries"]]
