"""Streams of known signs for the streaming tests: tiny-bundle clips of one signer separated by pauses."""

from __future__ import annotations

import numpy as np

from bundle_fixtures import tiny_clips

FPS = 30
GAP = 30  # frames of "hands out of view" between signs


def _rest(like: np.ndarray, n: int) -> np.ndarray:
    """``n`` frames of the body pose of frame ``like (1, 75, 3)`` with both hands out of view."""
    rest = np.repeat(like[-1:], n, axis=0).copy()
    rest[:, 33:] = np.nan
    return rest


def _stream(indices, clips) -> tuple[np.ndarray, list[str], list[tuple[float, float]]]:
    parts, signs, spans, t = [], [], [], 0
    prev = clips.landmarks[indices[0]][:1]
    for i in indices:
        c = clips.landmarks[i]
        parts += [_rest(prev, GAP // 2), _rest(c[:1], GAP - GAP // 2), c]  # the body moves during the pause
        prev = c[-1:]
        signs.append(clips.classes[clips.y[i]])
        spans.append(((t + GAP) / FPS, (t + GAP + len(c)) / FPS))
        t += GAP + len(c)
    parts.append(_rest(prev, GAP))
    return np.concatenate(parts), signs, spans


def _held_sign(clip: np.ndarray, n: int) -> np.ndarray:
    """``n`` frames of ``clip`` played forwards and backwards in a loop: hands up and moving, no jump, no pause."""
    there_and_back = np.concatenate([clip, clip[::-1][1:-1]])
    return np.concatenate([there_and_back] * (n // len(there_and_back) + 1))[:n]


def rate_variants(n: int) -> list[np.ndarray]:
    """Frame indices of a 30 FPS stream of ``n`` frames kept at 30, 15, 25 FPS and with 20 % dropped at random."""
    keep_25 = np.unique(np.round(np.arange(0, (n - 1) / FPS, 1 / 25) * FPS).astype(int))
    drop = np.sort(np.random.default_rng(1).choice(n, int(0.8 * n), replace=False))
    return [np.arange(n), np.arange(0, n, 2), keep_25, drop]


def _spot_names(predictor, frames, times, config):
    from signlang.inference.streaming import spot

    return spot(predictor, frames, times=times, config=config)


def recognised_clips(predictor, config):
    """Clips the tiny model recognises on their own: one correct event at 30, 15 and 25 FPS and with 20 % of frames dropped."""
    clips = tiny_clips()
    ok = []
    for i in range(len(clips)):
        frames, signs, _ = _stream([i], clips)
        if all([s.sign for s in _spot_names(predictor, frames[idx], idx / FPS, config)] == signs for idx in rate_variants(len(frames))):
            ok.append(i)
    signers = np.asarray(clips.signers)
    best = max(set(signers[ok]), key=lambda s: int((signers[ok] == s).sum()))
    ok = [i for i in ok if signers[i] == best]  # one person signing: no jumps of body size between signs
    assert len(ok) >= 6, f"the tiny model recognises only {len(ok)} clips of one signer alone"
    return clips, ok
