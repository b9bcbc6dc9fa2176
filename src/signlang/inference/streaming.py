"""Continuous recognition: landmark frames with timestamps in, one event per performed sign out.

:class:`StreamingRecognizer` wraps a :class:`~signlang.inference.predictor.Predictor` (anything with
``proba(clips) -> (N, C)`` and ``classes``). Frames ``(75, 3)`` (or ``(225,)`` / ``(258,)``) are
pushed one at a time with their timestamp in seconds. Timestamps drive everything:

* each frame is written onto a fixed **time grid** (``sample_fps`` samples per second, nearest
  frame in time), held in a ring buffer of exactly one window: memory and work per frame are
  constant however long the stream runs, and a stream at 15, 25 or 30 FPS, or with dropped
  frames, fills the grid with the same content;
* every ``hop_s`` of stream time a window of ``window_s`` seconds is due; due windows are
  classified together in one batch;
* a window passes the **no-sign gate** only if it holds enough **real frames** (frames pushed
  with a timestamp inside it, not the grid's repeated or interpolated samples: at least
  ``min_frames_per_s`` per second of window, :attr:`StreamConfig.min_window_frames`; a camera or
  a landmark extractor too slow for that gives ``few_frames``, never a sign), enough of it has a
  hand, the hands move, the top class is not the vocabulary's no-sign class (the decision
  policy's, :func:`signlang.inference.policy.no_sign_class`) and its probability reaches
  ``threshold``;
* consecutive windows with the same sign (allowing ``max_gap_windows`` rejected windows inside)
  form one run; a run of at least ``min_windows`` windows becomes one :class:`SignEvent` when it
  ends, so each performed sign yields one event, not one per window. A run ends when the top
  class changes, when the gate rejects more than ``max_gap_windows`` windows in a row (hands
  dropped or still, no sign), or when its window centres span ``max_sign_s``: hands that stay
  up and keep moving (a repeated sign, a looped video) still give one event every ``max_sign_s``.
  The event says what the decision policy (the model's
  :class:`~signlang.inference.policy.DecisionPolicy`, ``model.policy``) says of the run's mean
  probabilities: ``low_confidence`` and ``unknown`` (open set).

**Two-stage decoding** (when the model carries a segmenter, ``model.segmenter``, see
:mod:`signlang.inference.segments`): every grid sample goes once through the per-frame features
and the causal segmenter, which tags it outside / sign begins / inside; each segment it closes is
classified by the isolated ensemble (its raw samples resampled to the ensemble's input length as
any clip) and becomes one :class:`SignEvent` (with the policy's ``low_confidence`` / ``unknown``)
unless the ensemble calls it the no-sign class, or its probability is below ``threshold``, or too
few of its samples have a hand, or too few real frames arrived during it (``min_frames_per_s``).
A sign held longer than the segmenter's ``max_frames`` is closed there. The sliding-window gate
above is the documented **fallback** for bundles without a segmenter (or ``use_segmenter=False``).

A malformed frame raises :class:`FrameError` and leaves the recognizer exactly as it was, so the
stream goes on. :func:`spot` runs the same recognizer over a whole recording.
"""

from __future__ import annotations

import math
from collections import deque
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Protocol

import numpy as np

from signlang.inference.policy import DecisionPolicy
from signlang.landmarks.layout import (
    FLAT_DIM,
    HANDS,
    LEFT_SHOULDER,
    LEFT_WRIST_POSE,
    N_COORDS,
    N_POINTS,
    RIGHT_SHOULDER,
    RIGHT_WRIST_POSE,
    from_258,
    refuse_infinite,
)

# Gate outcomes of a window (None = a sign).
GATE_REASONS: Final = ("few_frames", "no_hands", "low_motion", "idle", "low_confidence")

_MOTION_POINTS: Final = np.r_[LEFT_WRIST_POSE, RIGHT_WRIST_POSE, np.arange(HANDS[0].start, HANDS[1].stop)]


class FrameError(ValueError):
    """A pushed frame was refused (bad shape, infinite values, timestamp not increasing)."""


class ProbaModel(Protocol):
    classes: Sequence[str]

    def proba(self, clips: Sequence[np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class StreamConfig:
    """Settings of the streaming recognizer (times in seconds)."""

    window_s: float = 0.8
    hop_s: float = 0.1
    sample_fps: float = 30.0
    threshold: float = 0.4
    min_hands: float = 0.6  # fraction of a window's samples with at least one hand
    min_motion: float = 0.002  # spread of the hand points over the window, in shoulder widths (held letters: ~0.005)
    min_windows: int = 3
    max_gap_windows: int = 1
    segment_pad_s: float | None = 0.15  # an event spans its first to last window centre, padded by this (None: hop_s / 2)
    smooth_windows: int = 3  # average the class probabilities of this many consecutive active windows
    max_frame_gap_s: float = 0.5  # grid samples further than this from any frame are "not detected"
    min_frames_per_s: float = 5.0  # real frames a window needs per second of it (else "few_frames"); 0 = no such rule
    max_sign_s: float = 2.0  # a run whose window centres span this long is closed (an event) even if the sign goes on
    batch_size: int = 32
    top_k: int = 3
    use_segmenter: bool = True  # two-stage decoding when the model has a segmenter; False: the window gate

    def __post_init__(self) -> None:
        if not (self.window_s > 0 and self.hop_s > 0 and self.sample_fps > 0):
            raise ValueError(f"window_s, hop_s and sample_fps must be > 0, got {self.window_s}, {self.hop_s}, {self.sample_fps}")
        if self.hop_s > self.window_s:
            raise ValueError(f"hop_s ({self.hop_s}) must not exceed window_s ({self.window_s})")
        if not 0.0 <= self.threshold <= 1.0 or not 0.0 <= self.min_hands <= 1.0:
            raise ValueError(f"threshold and min_hands must be in [0, 1], got {self.threshold}, {self.min_hands}")
        if self.min_windows < 1 or self.max_gap_windows < 0 or self.batch_size < 1 or self.top_k < 1 or self.smooth_windows < 1:
            raise ValueError("min_windows, batch_size and top_k must be >= 1 and max_gap_windows >= 0")
        if self.min_frames_per_s < 0 or not self.max_sign_s > 0:
            raise ValueError(f"min_frames_per_s must be >= 0 and max_sign_s > 0, got {self.min_frames_per_s}, {self.max_sign_s}")

    @property
    def window_samples(self) -> int:
        return max(2, round(self.window_s * self.sample_fps))

    @property
    def hop_samples(self) -> int:
        return max(1, round(self.hop_s * self.sample_fps))

    @property
    def min_window_frames(self) -> int:
        """Real frames a window needs to be classified (``min_frames_per_s`` x ``window_s``, rounded up)."""
        return math.ceil(self.min_frames_per_s * self.window_s - 1e-9)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SignEvent:
    """One performed sign: ``top_k`` [(sign, prob)] averaged over the windows of its run, and the policy's
    verdict on that average (``low_confidence``, ``unknown``)."""

    sign: str
    prob: float
    top_k: list[tuple[str, float]]
    start_s: float
    end_s: float
    emitted_at_s: float = 0.0  # stream time of the frame that closed the run
    windows: int = 0  # windows of the run (the gate), or grid samples of the segment (two-stage)
    low_confidence: bool = False
    unknown: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"sign": self.sign, "prob": round(self.prob, 4), "top_k": [{"sign": s, "prob": round(p, 4)} for s, p in self.top_k],
                "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "low_confidence": bool(self.low_confidence), "unknown": bool(self.unknown)}


@dataclass
class WindowResult:
    """The latest classified window: its top-k, the gate's verdict (``rejected`` None = a sign) and the
    policy's (``low_confidence``, ``unknown``; both False for a window the model did not see)."""

    start_s: float
    end_s: float
    top_k: list[tuple[str, float]]
    rejected: str | None
    hands: float
    motion: float
    low_confidence: bool = False
    unknown: bool = False
    frames: int = 0  # real frames (pushed, not grid-filled) inside the window

    def to_dict(self) -> dict[str, Any]:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "top_k": [{"sign": s, "prob": round(p, 4)} for s, p in self.top_k],
                "sign": None if self.rejected else self.top_k[0][0], "rejected": self.rejected, "frames": self.frames,
                "low_confidence": bool(self.low_confidence), "unknown": bool(self.unknown)}


@dataclass
class _Run:
    label: int
    first_center: float
    last_center: float
    prob_sum: np.ndarray
    count: int = 1
    gap: int = 0


def as_frame(frame: Any) -> np.ndarray:
    """A frame ``(75, 3)``, ``(225,)`` or ``(258,)`` as float32 ``(75, 3)``; :class:`FrameError` otherwise."""
    try:
        arr = np.asarray(frame, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise FrameError(f"frame is not numeric ({exc})") from None
    if arr.shape == (N_POINTS, N_COORDS):
        out = arr
    elif arr.shape == (N_POINTS * N_COORDS,):
        out = arr.reshape(N_POINTS, N_COORDS)
    elif arr.shape == (FLAT_DIM,):
        out = from_258(arr[None])[0][0]
    else:
        raise FrameError(f"frame: expected shape (75, 3), (225,) or (258,), got {tuple(arr.shape)}")
    try:
        refuse_infinite(out, "frame")
    except ValueError as exc:
        raise FrameError(str(exc)) from None
    return out


def window_hands(windows: np.ndarray) -> np.ndarray:
    """Fraction of samples with at least one hand: ``(B, n, 75, 3) -> (B,)``."""
    present = np.stack([~np.all(np.isnan(windows[..., h, 0]), axis=-1) for h in HANDS], axis=-1).any(-1)
    return present.mean(axis=-1)


def window_motion(windows: np.ndarray) -> np.ndarray:
    """How much the wrists and hand points move in each window, in shoulder widths: ``(B, n, 75, 3) -> (B,)``.

    The mean over the points seen in the window of their positions' standard deviation over time
    (x, y; the root of the summed variances). 0 where nothing is seen or no shoulder width is known.
    """
    xy = windows[..., :2].astype(np.float64)
    pts = xy[:, :, _MOTION_POINTS]  # (B, n, P, 2)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.sqrt(np.nanvar(pts, axis=1).sum(-1))  # (B, P)
        mean_spread = np.nanmean(spread, axis=-1)
        shoulder = np.nanmedian(np.linalg.norm(xy[:, :, LEFT_SHOULDER] - xy[:, :, RIGHT_SHOULDER], axis=-1), axis=1)
    motion = mean_spread / shoulder
    return np.where(np.isfinite(motion), motion, 0.0)


class StreamingRecognizer:
    """Sliding-window sign spotting over a stream of landmark frames (see the module docstring).

    ``push(frame, t)`` returns the events closed by this frame (usually none); ``finish()`` closes
    the stream and returns the last one. ``latest`` is the most recent classified window.
    """

    def __init__(self, model: ProbaModel, config: StreamConfig | None = None) -> None:
        self.model = model
        self.config = config or StreamConfig()
        self.classes: tuple[str, ...] = tuple(str(c) for c in model.classes)
        policy = getattr(model, "policy", None)
        self.policy: DecisionPolicy = policy if isinstance(policy, DecisionPolicy) else DecisionPolicy(self.classes)
        """The decision rules (no-sign class, unsure, unknown): the model's own, or the defaults without an open-set rule."""
        runner = getattr(model, "segmenter", None) if self.config.use_segmenter else None
        self._spotter = runner.spotter() if runner is not None else None
        self.mode = "segmenter" if self._spotter is not None else "gate"
        """``segmenter`` (two-stage decoding) or ``gate`` (sliding windows, the fallback)."""
        n = self.config.window_samples
        self._ring = np.full((n, N_POINTS, N_COORDS), np.nan, dtype=np.float32)
        self._pending: list[tuple[float, np.ndarray, int]] = []  # (end time, window, real frames in it)
        self._times: deque[float] = deque()  # times of the latest real frames (about one window's worth)
        self.latest: WindowResult | None = None
        self.stats = {"frames": 0, "refused": 0, "windows": 0, "events": 0}
        self.reset()

    def reset(self) -> None:
        """Forget the stream (a new one starts with the next frame)."""
        self._ring[:] = np.nan
        self._pending.clear()
        self._times.clear()
        self._t0: float | None = None  # stream time of grid sample 0
        self._last_t: float | None = None
        self._last_frame: np.ndarray | None = None
        self._next_k = 0  # index of the next grid sample to fill
        self._run: _Run | None = None
        self._pause_events: list[SignEvent] = []
        self._recent: deque[np.ndarray] = deque(maxlen=self.config.smooth_windows)
        self.latest = None
        if self._spotter is not None:
            self._spotter.reset(0)

    # --- input --------------------------------------------------------------------------------
    def push(self, frame: Any, t: float) -> list[SignEvent]:
        """Add one frame taken at stream time ``t`` (seconds, strictly increasing)."""
        lm, t = self._checked(frame, t)
        self._fill_grid(lm, t)
        return self._run_pending()

    def _checked(self, frame: Any, t: Any) -> tuple[np.ndarray, float]:
        """Validate one frame and its timestamp before anything changes; count it."""
        try:
            lm = as_frame(frame)
            try:
                t = float(t)
            except (TypeError, ValueError):
                raise FrameError(f"timestamp must be a number, got {t!r}") from None
            if not math.isfinite(t):
                raise FrameError(f"timestamp must be finite, got {t}")
            if self._last_t is not None and t <= self._last_t:
                raise FrameError(f"timestamp {t:.6f} s does not follow the previous frame's {self._last_t:.6f} s")
        except FrameError:
            self.stats["refused"] += 1
            raise
        self.stats["frames"] += 1
        return lm, t

    def push_many(self, frames: np.ndarray, times: np.ndarray) -> list[SignEvent]:
        """Push ``(T, 75, 3)`` frames with times ``(T,)``; windows are classified in batches of ``batch_size``."""
        events: list[SignEvent] = []
        for frame, t in zip(frames, times):
            lm, t = self._checked(frame, t)
            self._fill_grid(lm, t)
            waiting = self._spotter.waiting if self._spotter is not None else len(self._pending)
            if waiting >= self.config.batch_size:
                events += self._run_pending()
        return events + self._run_pending()

    def finish(self) -> list[SignEvent]:
        """End of stream: classify what is due and close the open run."""
        if self._spotter is not None:
            events, self._pause_events = self._pause_events + self._segment_events(self._spotter.finish(), self._last_t or 0.0), []
            self.stats["events"] += len(events)
            return events
        events = self._run_pending()
        if self._run is not None:
            ev = self._close_run(self._last_t or 0.0)
            if ev is not None:
                events.append(ev)
                self.stats["events"] += 1
        return events

    # --- grid and windows ---------------------------------------------------------------------
    def _fill_grid(self, lm: np.ndarray, t: float) -> None:
        cfg = self.config
        dt = 1.0 / cfg.sample_fps
        if self._t0 is None:
            self._t0 = t
        # grid samples whose time is <= t get the nearer of the previous and this frame
        k_end = int(math.floor((t - self._t0) / dt + 1e-9))
        n = self._ring.shape[0]
        if k_end - self._next_k + 1 > n:  # a long pause: only the last window's worth matters
            self._next_k = k_end - n + 1
            if self._spotter is not None:  # the pause ends the sign in progress; the segmenter starts afresh
                self._pause_events += self._segment_events(self._spotter.finish(), t)
                self._spotter.reset(self._next_k)
            elif self._run is not None:  # the pause ends the sign in progress
                self._pending.append((math.nan, self._ring[:0], 0))
        lo_min = self._t0 + (self._next_k + 0.5 - n) * dt  # the earliest frame time any window still to come counts
        while self._times and self._times[0] < lo_min:
            self._times.popleft()
        self._times.append(t)
        for k in range(self._next_k, k_end + 1):
            tk = self._t0 + k * dt
            prev_t = self._last_t
            d_prev = tk - prev_t if prev_t is not None else math.inf
            d_cur = t - tk
            if self._last_frame is not None and d_prev < d_cur:
                sample = self._last_frame if d_prev <= cfg.max_frame_gap_s else None
            else:
                sample = lm if d_cur <= cfg.max_frame_gap_s else None
            if sample is not None and self._last_frame is not None and 0 < d_prev and d_prev + d_cur <= cfg.max_frame_gap_s:
                w = d_prev / (d_prev + d_cur)  # between two frames: linear in time; a part missing in either: the nearer frame
                mix = (1.0 - w) * self._last_frame + w * lm
                sample = np.where(np.isnan(mix), sample, mix)
            self._ring[k % n] = np.nan if sample is None else sample
            if self._spotter is not None:
                self._spotter.add(k, self._ring[k % n])
            elif k + 1 >= n and (k + 1 - n) % cfg.hop_samples == 0:
                order = (np.arange(k + 1 - n, k + 1)) % n
                end = self._t0 + (k + 1) * dt  # the frames nearest to the window's samples: [end - (n + 1/2) dt, end - dt/2)
                lo, hi = end - (n + 0.5) * dt, end - 0.5 * dt
                self._pending.append((end, self._ring[order].copy(), sum(lo <= x < hi for x in self._times)))
        self._next_k = max(self._next_k, k_end + 1)
        if self._spotter is not None:
            self._spotter.mark_real(k_end)
        self._last_t = t
        self._last_frame = lm

    def _run_pending(self) -> list[SignEvent]:
        if self._spotter is not None:
            events, self._pause_events = self._pause_events + self._segment_events(self._spotter.run(), self._last_t or 0.0), []
            self.stats["events"] += len(events)
            return events
        events: list[SignEvent] = []
        bs = self.config.batch_size
        while self._pending:
            if math.isnan(self._pending[0][0]):  # a pause marker: close the open run
                self._pending.pop(0)
                ev = self._close_run(self._last_t or 0.0)
                events += [ev] if ev is not None else []
                continue
            cut = next((i for i, p in enumerate(self._pending[:bs]) if math.isnan(p[0])), min(bs, len(self._pending)))
            chunk, self._pending = self._pending[:cut], self._pending[cut:]
            events += self._classify([c[0] for c in chunk], np.stack([c[1] for c in chunk]), np.array([c[2] for c in chunk]))
        self.stats["events"] += len(events)
        return events

    def _classify(self, ends: list[float], windows: np.ndarray, frames: np.ndarray) -> list[SignEvent]:
        """Gate and classify windows ``(B, n, 75, 3)`` ending at ``ends`` holding ``frames (B,)`` real frames; feed the runs in order."""
        cfg = self.config
        hands = window_hands(windows)
        motion = window_motion(windows)
        enough = frames >= cfg.min_window_frames
        active = enough & (hands >= cfg.min_hands) & (motion >= cfg.min_motion)
        probs = np.zeros((len(ends), len(self.classes)), dtype=np.float64)
        if active.any():
            probs[active] = self.model.proba(list(windows[active]))
        self.stats["windows"] += len(ends)
        low = self.policy.low_confidence(probs) & active
        unknown = self.policy.unknown(probs) & active
        events: list[SignEvent] = []
        for i, end in enumerate(ends):
            centre_end = end
            if active[i] and cfg.smooth_windows > 1:  # moving average over the latest active windows
                self._recent.append(probs[i].copy())
                probs[i] = np.mean(self._recent, axis=0)
                centre_end = end - cfg.hop_s * (len(self._recent) - 1) / 2  # the average is centred that much earlier
            elif not active[i]:
                self._recent.clear()
            top = np.argsort(-probs[i], kind="stable")[: cfg.top_k]
            best = int(top[0])
            if not enough[i]:
                reason: str | None = "few_frames"
            elif hands[i] < cfg.min_hands:
                reason = "no_hands"
            elif motion[i] < cfg.min_motion:
                reason = "low_motion"
            elif self.policy.is_no_sign(best):
                reason = "idle"
            elif probs[i, best] < cfg.threshold:
                reason = "low_confidence"
            else:
                reason = None
            self.latest = WindowResult(end - cfg.window_s, end, [(self.classes[j], float(probs[i, j])) for j in top],
                                       reason, float(hands[i]), float(motion[i]), bool(low[i]), bool(unknown[i]), int(frames[i]))
            ev = self._feed(None if reason else best, probs[i], centre_end, end)
            if ev is not None:
                events.append(ev)
        return events

    # --- two-stage: segments -> events --------------------------------------------------------
    def _segment_events(self, segments: list[tuple[int, int]], now: float) -> list[SignEvent]:
        """Classify closed segments ``(start_k, end_k)`` of the grid with the ensemble; an event for each sign."""
        if not segments or self._spotter is None:
            return []
        cfg = self.config
        dt = 1.0 / cfg.sample_fps
        clips = [self._spotter.frames(a, b) for a, b in segments]
        hands = np.array([float(window_hands(c[None])[0]) if len(c) >= 2 else 0.0 for c in clips])
        real = np.array([self._spotter.real_frames(a, b) for a, b in segments])
        enough = real >= cfg.min_frames_per_s * np.array([(b - a) * dt for a, b in segments]) - 1e-9
        ask = (hands >= cfg.min_hands) & enough
        probs = np.zeros((len(clips), len(self.classes)))
        if ask.any():
            probs[ask] = self.model.proba([c for c, a in zip(clips, ask) if a])
        self.stats["windows"] += int(ask.sum())
        low = self.policy.low_confidence(probs) & ask
        unknown = self.policy.unknown(probs) & ask
        events = []
        for i, (a, b) in enumerate(segments):
            top = np.argsort(-probs[i], kind="stable")[: cfg.top_k]
            best = int(top[0])
            start, end = (self._t0 or 0.0) + a * dt, (self._t0 or 0.0) + b * dt
            reason = ("few_frames" if not enough[i] else "no_hands" if not ask[i] else "idle" if self.policy.is_no_sign(best)
                      else "low_confidence" if probs[i, best] < cfg.threshold else None)
            top_k = [(self.classes[j], float(probs[i, j])) for j in top]
            self.latest = WindowResult(start, end, top_k, reason, float(hands[i]), 0.0, bool(low[i]), bool(unknown[i]), int(real[i]))
            if reason is None:
                events.append(SignEvent(self.classes[best], float(probs[i, best]), top_k, start, end, emitted_at_s=now,
                                        windows=b - a, low_confidence=bool(low[i]), unknown=bool(unknown[i])))
        return events

    # --- runs -> events -----------------------------------------------------------------------
    def _feed(self, label: int | None, probs: np.ndarray, end: float, now: float) -> SignEvent | None:
        """One window's verdict (window ending at ``end``) into the run state machine; an event when a run closes at ``now``."""
        center = end - self.config.window_s / 2
        run = self._run
        if run is not None and label == run.label:
            run.last_center, run.count, run.gap = center, run.count + 1, 0
            run.prob_sum += probs
            if run.last_center - run.first_center >= self.config.max_sign_s - 1e-9:  # the sign goes on: close it here
                return self._close_run(now)
            return None
        event = None
        if run is not None:
            run.gap += 1
            if label is not None or run.gap > self.config.max_gap_windows:
                event = self._close_run(now)
        if label is not None and self._run is None:
            self._run = _Run(label, center, center, probs.astype(np.float64).copy())
        return event

    def _close_run(self, now: float) -> SignEvent | None:
        run, self._run = self._run, None
        if run is None or run.count < self.config.min_windows:
            return None
        mean = run.prob_sum / run.count
        top = np.argsort(-mean, kind="stable")[: self.config.top_k]
        half = self.config.hop_s / 2 if self.config.segment_pad_s is None else self.config.segment_pad_s
        start = max(run.first_center - half, self._t0 or 0.0)
        return SignEvent(self.classes[run.label], float(mean[run.label]), [(self.classes[j], float(mean[j])) for j in top],
                         start, run.last_center + half, emitted_at_s=now, windows=run.count,
                         low_confidence=bool(self.policy.low_confidence(mean)[0]), unknown=bool(self.policy.unknown(mean)[0]))


@dataclass
class Segment:
    """A spotted sign in a recording, in the recording's own frames and seconds."""

    sign: str
    prob: float
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    top_k: list[tuple[str, float]] = field(default_factory=list)
    low_confidence: bool = False
    unknown: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"sign": self.sign, "prob": round(self.prob, 4), "start_frame": self.start_frame, "end_frame": self.end_frame,
                "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "low_confidence": bool(self.low_confidence), "unknown": bool(self.unknown)}


def spot(model: ProbaModel, landmarks: np.ndarray, *, fps: float | None = None, times: np.ndarray | None = None,
         config: StreamConfig | None = None) -> list[Segment]:
    """Spot the signs of one recording ``(T, 75, 3)`` (frame times ``times`` (T,) or a constant ``fps``)."""
    lm = np.asarray(landmarks, dtype=np.float32)
    if lm.ndim != 3 or lm.shape[1:] != (N_POINTS, N_COORDS):
        raise ValueError(f"spot: expected landmarks (T, 75, 3), got {tuple(lm.shape)}")
    if times is None:
        if not fps or fps <= 0:
            raise ValueError("spot: give the frame times or a positive fps")
        times = np.arange(lm.shape[0], dtype=np.float64) / float(fps)
    times = np.asarray(times, dtype=np.float64)
    if times.shape != (lm.shape[0],) or (np.diff(times) <= 0).any():
        raise ValueError(f"spot: times must be ({lm.shape[0]},) and strictly increasing")
    rec = StreamingRecognizer(model, config)
    events = rec.push_many(lm, times) + rec.finish()
    out = []
    for ev in events:
        a = int(np.clip(np.searchsorted(times, ev.start_s, side="left"), 0, len(times) - 1))
        b = int(np.clip(np.searchsorted(times, ev.end_s, side="right") - 1, a, len(times) - 1))
        out.append(Segment(ev.sign, ev.prob, a, b, ev.start_s, ev.end_s, ev.top_k, ev.low_confidence, ev.unknown))
    return out
