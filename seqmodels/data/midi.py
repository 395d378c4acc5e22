"""Standard MIDI files (SMF) <-> piano rolls, written from the specification (no MIDI library needed).

A *piano roll* is a ``(T, K)`` 0/1 array: ``roll[t, k] = 1`` when MIDI note ``k + note_offset`` sounds
during time step ``t``. A file is read into its notes (``Note``: pitch, start and end tick, channel,
velocity, track) and then quantised to a roll at a chosen resolution: ``steps_per_beat`` (per quarter
note, e.g. 1 for the JSB Chorales, 2 for eighth notes) or ``steps_per_second`` (through the tempo map).

    step(tick)   = round(tick * steps_per_beat / ticks_per_beat)             (halves round up)
    note [on, off) sounds in steps [step(on), max(step(off), step(on) + 1))
    seconds(tick) = Σ over tempo segments  Δticks * (µs per quarter note) / (10⁶ * ticks_per_beat)

Read: header ``MThd`` (format 0 or 1; format 2 is refused), then ``MTrk`` chunks (other chunk types
skipped, as the specification asks) of events ``<delta-time VLQ> <event>``: channel messages (with
running status), meta events ``FF type len data`` (tempo ``FF 51`` kept, the rest skipped) and sysex
``F0/F7 len data`` (skipped); meta and sysex events cancel running status. A note-on of velocity 0 is a
note-off. Any byte that breaks the format raises :class:`DataError` naming the file and byte offset.

Write: one track (format 0) or a tempo track plus a note track (format 1), running status, note-offs
as note-on velocity 0, End-of-Track after the last step, so that ``roll -> file -> roll`` is exact.

>>> import numpy as np
>>> roll = np.zeros((4, 128), np.uint8); roll[0:2, 60] = 1; roll[1, 64] = 1
>>> back = parse_midi(midi_bytes(roll, steps_per_beat=2)).piano_roll(steps_per_beat=2)
>>> bool((back == roll).all())
True
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..core.errors import ConfigError, DataError, ShapeError, check_choice, check_positive_int

__all__ = ["Note", "MidiFile", "parse_midi", "read_midi", "read_midi_roll", "midi_bytes", "write_midi",
           "notes_to_roll", "roll_to_notes"]

DEFAULT_TEMPO = 500_000                 # µs per quarter note (120 beats per minute)
DRUM_CHANNEL = 9                        # channel 10 in the 1-based numbering: percussion, not pitches
_DATA_BYTES = {0x8: 2, 0x9: 2, 0xA: 2, 0xB: 2, 0xC: 1, 0xD: 1, 0xE: 2}


class Note(NamedTuple):
    """One sounding note: MIDI ``pitch`` 0..127 from tick ``start`` to tick ``end``."""

    pitch: int
    start: int
    end: int
    channel: int
    velocity: int
    track: int


@dataclass(frozen=True)
class MidiFile:
    """What a standard MIDI file says about notes and time (see :func:`parse_midi`)."""

    format: int
    num_tracks: int
    ticks_per_beat: int | None          # None for SMPTE time division
    smpte_ticks_per_second: float | None
    notes: list = field(default_factory=list)
    tempos: list = field(default_factory=list)     # (tick, µs per quarter note), sorted by tick
    end_tick: int = 0
    source: str = "<bytes>"

    def seconds(self, ticks) -> np.ndarray:
        """Ticks -> seconds through the tempo map (or the SMPTE rate)."""
        ticks = np.asarray(ticks, dtype=np.float64)
        if self.ticks_per_beat is None:
            return ticks / self.smpte_ticks_per_second
        changes = [(0, DEFAULT_TEMPO)] + [tc for tc in self.tempos]
        at = np.array([t for t, _ in changes], np.float64)
        us = np.array([u for _, u in changes], np.float64)
        start_s = np.concatenate([[0.0], np.cumsum(np.diff(at) * us[:-1])]) / (1e6 * self.ticks_per_beat)
        seg = np.searchsorted(at, ticks, side="right") - 1          # tempo segment of each tick
        return start_s[seg] + (ticks - at[seg]) * us[seg] / (1e6 * self.ticks_per_beat)

    def piano_roll(self, steps_per_beat: float | None = None, steps_per_second: float | None = None, *,
                   include_drums: bool = False) -> np.ndarray:
        """Quantise the notes to a ``(T, 128)`` uint8 roll (exactly one resolution must be given)."""
        if (steps_per_beat is None) == (steps_per_second is None):
            raise ConfigError("piano_roll: give exactly one of steps_per_beat and steps_per_second")
        res = steps_per_beat if steps_per_second is None else steps_per_second
        if not (isinstance(res, (int, float)) and np.isfinite(res) and res > 0):
            raise ConfigError(f"resolution: expected a number > 0, got {res!r}")
        if steps_per_beat is not None:
            if self.ticks_per_beat is None:
                raise ConfigError(f"{self.source}: SMPTE time division has no beats; use steps_per_second")

            def step(t):
                return np.floor(np.asarray(t, np.float64) * steps_per_beat / self.ticks_per_beat + 0.5)
        else:
            def step(t):
                return np.floor(self.seconds(t) * steps_per_second + 0.5)
        notes = [n for n in self.notes if include_drums or n.channel != DRUM_CHANNEL]
        on = step([n.start for n in notes]).astype(np.int64)
        off = np.maximum(step([n.end for n in notes]).astype(np.int64), on + 1)
        T = max(int(step(self.end_tick)), int(off.max(initial=0)))
        roll = np.zeros((T, 128), np.uint8)
        for n, a, b in zip(notes, on, off):
            roll[a:b, n.pitch] = 1
        return roll


class _Cursor:
    """Bounds-checked reads from ``data``; errors name the file and the byte offset."""

    def __init__(self, data: bytes, source: str, pos: int = 0, end: int | None = None, where: str = "the file"):
        self.data, self.source, self.pos, self.where = data, source, pos, where
        self.end = len(data) if end is None else end

    def fail(self, message: str, at: int | None = None) -> DataError:
        return DataError(f"{self.source}: byte {self.pos if at is None else at}: {message}")

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > self.end:
            raise self.fail(f"{what} needs {n} byte(s) but {self.where} ends after {self.end - self.pos}; "
                            "the file is truncated or not a MIDI file")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def uint(self, n: int, what: str) -> int:
        return int.from_bytes(self.take(n, what), "big")

    def vlq(self, what: str) -> int:
        """A variable-length quantity: 7 bits per byte, high bit set on all but the last, at most 4 bytes."""
        start, value = self.pos, 0
        for _ in range(4):
            b = self.u8(what)
            value = (value << 7) | (b & 0x7F)
            if not b & 0x80:
                return value
        raise self.fail(f"{what}: variable-length number longer than 4 bytes", start)


def parse_midi(data: bytes, source: str = "<bytes>") -> MidiFile:
    """Parse the bytes of a standard MIDI file (format 0 or 1) into a :class:`MidiFile`."""
    cur = _Cursor(bytes(data), str(source))
    magic = cur.data[:4]
    if magic != b"MThd":
        raise DataError(f"{source}: byte 0: expected the MIDI header 'MThd', got {magic!r}; "
                        "this is not a standard MIDI file (.mid)")
    cur.pos = 4
    hlen = cur.uint(4, "header length")
    if hlen < 6:
        raise cur.fail(f"header length {hlen} is less than 6", 4)
    fmt = cur.uint(2, "format")
    ntrks = cur.uint(2, "track count")
    division = cur.uint(2, "time division")
    if fmt not in (0, 1):
        raise cur.fail(f"MIDI format {fmt} is not supported; expected format 0 or 1"
                       + (" (format 2 holds independent patterns)" if fmt == 2 else ""), 8)
    if fmt == 0 and ntrks != 1:
        raise cur.fail(f"a format 0 file must have exactly 1 track, the header says {ntrks}", 10)
    tpb, smpte = division, None
    if division & 0x8000:
        fps = 256 - (division >> 8)
        if fps not in (24, 25, 29, 30):
            raise cur.fail(f"SMPTE time division with {fps} frames per second; expected 24, 25, 29 or 30", 12)
        tpb, smpte = None, (29.97 if fps == 29 else fps) * (division & 0xFF)
        if smpte == 0:
            raise cur.fail("SMPTE time division with 0 ticks per frame", 12)
    elif division == 0:
        raise cur.fail("time division of 0 ticks per quarter note", 12)
    cur.pos = 8 + hlen
    notes, tempos, end_tick, track = [], [], 0, 0
    while track < ntrks:
        if cur.pos + 8 > len(cur.data):
            raise cur.fail(f"the file ends after {track} of the {ntrks} tracks the header announces")
        kind = cur.take(4, "chunk type")
        size = cur.uint(4, "chunk length")
        if kind != b"MTrk":
            if not all(32 <= c < 127 for c in kind):
                raise cur.fail(f"expected a chunk type such as 'MTrk', got {kind!r}", cur.pos - 8)
            cur.take(size, f"chunk {kind.decode()}")        # unknown chunk: skipped
            continue
        if cur.pos + size > len(cur.data):
            raise cur.fail(f"track {track} claims {size} bytes but only {len(cur.data) - cur.pos} remain; "
                           "the file is truncated")
        body = _Cursor(cur.data, cur.source, cur.pos, cur.pos + size, f"track {track}")
        t_end = _parse_track(body, track, notes, tempos)
        end_tick = max(end_tick, t_end)
        cur.pos += size
        track += 1
    tempos.sort(key=lambda tc: tc[0])
    notes.sort(key=lambda n: (n.start, n.pitch, n.track))
    return MidiFile(fmt, ntrks, tpb, smpte, notes, tempos, end_tick, str(source))


def _parse_track(cur: _Cursor, track: int, notes: list, tempos: list) -> int:
    """Read the events of one MTrk chunk, appending notes and tempo changes; return its end tick."""
    tick, status = 0, None
    sounding: dict[tuple[int, int], deque] = {}
    while cur.pos < cur.end:
        tick += cur.vlq("delta time")
        at = cur.pos
        b = cur.u8("event")
        if b == 0xFF:                                       # meta: FF type len data
            mtype = cur.u8("meta type")
            payload = cur.take(cur.vlq("meta length"), f"meta event 0x{mtype:02X}")
            status = None
            if mtype == 0x2F:                               # End of Track
                break
            if mtype == 0x51:                               # Set Tempo: µs per quarter note
                if len(payload) != 3:
                    raise cur.fail(f"tempo event with {len(payload)} data bytes; expected 3", at)
                tempos.append((tick, int.from_bytes(payload, "big") or DEFAULT_TEMPO))
            continue
        if b in (0xF0, 0xF7):                               # sysex (or escape): F0 len data
            cur.take(cur.vlq("sysex length"), "sysex data")
            status = None
            continue
        if b >= 0xF0:
            raise cur.fail(f"status byte 0x{b:02X} (system common/real-time) is not allowed in a MIDI file", at)
        if b >= 0x80:
            status, data = b, [cur.u8("channel message data")] if _DATA_BYTES[b >> 4] else []
        elif status is None:
            raise cur.fail(f"data byte 0x{b:02X} without a status byte (no running status in effect)", at)
        else:
            data = [b]                                      # running status: b is the first data byte
        while len(data) < _DATA_BYTES[status >> 4]:
            data.append(cur.u8("channel message data"))
        if any(d >= 0x80 for d in data):
            raise cur.fail(f"channel message 0x{status:02X} has data byte >= 0x80: {bytes(data).hex(' ')}", at)
        kind, channel = status >> 4, status & 0x0F
        if kind == 0x9 and data[1] > 0:                     # note on
            sounding.setdefault((channel, data[0]), deque()).append((tick, data[1]))
        elif kind in (0x8, 0x9):                            # note off (or note on with velocity 0)
            open_notes = sounding.get((channel, data[0]))
            if open_notes:
                start, vel = open_notes.popleft()
                notes.append(Note(data[0], start, tick, channel, vel, track))
    for (channel, pitch), open_notes in sounding.items():  # still sounding at the end: stop them there
        for start, vel in open_notes:
            notes.append(Note(pitch, start, tick, channel, vel, track))
    return tick


def read_midi(path) -> MidiFile:
    """Read a standard MIDI file from ``path`` (see :func:`parse_midi`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a MIDI file") from None
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    return parse_midi(data, str(path))


def read_midi_roll(path, steps_per_beat: float | None = 1, steps_per_second: float | None = None, *,
                   include_drums: bool = False) -> np.ndarray:
    """A MIDI file as a ``(T, 128)`` uint8 piano roll (column = MIDI note number)."""
    if steps_per_second is not None:
        steps_per_beat = None
    return read_midi(path).piano_roll(steps_per_beat, steps_per_second, include_drums=include_drums)


# ----------------------------------------------------------------------------------------- writing


def _vlq_bytes(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _track_chunk(events: list[tuple[int, bytes]], end_tick: int) -> bytes:
    """Events (absolute tick, bytes) -> an MTrk chunk with running status and End-of-Track."""
    body, now, status = bytearray(), 0, None
    for tick, msg in events:
        body += _vlq_bytes(tick - now)
        now = tick
        if msg[0] < 0xF0 and msg[0] == status:
            body += msg[1:]                                 # running status: the status byte is implied
        else:
            body += msg
            status = msg[0] if msg[0] < 0xF0 else None
    body += _vlq_bytes(max(end_tick - now, 0)) + b"\xFF\x2F\x00"
    return b"MTrk" + len(body).to_bytes(4, "big") + bytes(body)


def midi_bytes(roll, *, note_offset: int = 0, steps_per_beat: int = 1, ticks_per_beat: int = 480,
               bpm: float = 120.0, velocity: int = 80, program: int = 0, channel: int = 0,
               fmt: int = 0) -> bytes:
    """A playable standard MIDI file for a ``(T, K)`` 0/1 roll; column k plays MIDI note k + note_offset.

    Every run of consecutive 1s in a column becomes one note; the file lasts exactly ``T`` steps.
    ``fmt=0`` writes one track; ``fmt=1`` a tempo track followed by the note track.
    """
    roll = np.asarray(roll)
    if roll.ndim != 2:
        raise ShapeError(f"roll: expected shape (T, K) (time steps x notes), got {roll.shape}")
    if roll.dtype.kind not in "biuf" or not np.isin(roll, (0, 1)).all():
        raise DataError("roll: expected 0/1 values (a note sounds or not)")
    steps_per_beat = check_positive_int("steps_per_beat", steps_per_beat)
    ticks_per_beat = check_positive_int("ticks_per_beat", ticks_per_beat)
    if ticks_per_beat % steps_per_beat or ticks_per_beat >= 0x8000:
        raise ConfigError(f"ticks_per_beat: expected a multiple of steps_per_beat={steps_per_beat} below 32768, "
                          f"got {ticks_per_beat}")
    if not (isinstance(bpm, (int, float)) and 3.6 < bpm <= 60e6):
        raise ConfigError(f"bpm: expected beats per minute in (3.6, 6e7], got {bpm!r}")
    for name, value, high in (("velocity", velocity, 127), ("program", program, 127), ("channel", channel, 15)):
        if not (isinstance(value, int) and (1 if name == "velocity" else 0) <= value <= high):
            raise ConfigError(f"{name}: expected an integer in [{1 if name == 'velocity' else 0}, {high}], "
                              f"got {value!r}")
    check_choice("fmt", fmt, (0, 1))
    T, K = roll.shape
    cols = np.flatnonzero(roll.any(axis=0))
    if cols.size and not (0 <= cols[0] + note_offset and cols[-1] + note_offset <= 127):
        bad = cols[0] if cols[0] + note_offset < 0 else cols[-1]
        raise DataError(f"roll: column {bad} plays MIDI note {bad + note_offset} (note_offset={note_offset}); "
                        "expected notes in 0..127")
    per_step = ticks_per_beat // steps_per_beat
    status = 0x90 | channel                                # note on; velocity 0 = note off
    events = []                                             # (tick, order, pitch, bytes): offs before ons
    padded = np.zeros((T + 2, K), np.int8)
    padded[1:-1] = roll.astype(np.int8)
    change = np.diff(padded, axis=0)                       # +1 where a run starts, -1 one past its end
    for t, k in zip(*np.nonzero(change == 1)):
        events.append((int(t) * per_step, 1, int(k), bytes([status, int(k) + note_offset, velocity])))
    for t, k in zip(*np.nonzero(change == -1)):
        events.append((int(t) * per_step, 0, int(k), bytes([status, int(k) + note_offset, 0])))
    events.sort(key=lambda e: e[:3])
    tempo = int(round(60e6 / bpm)).to_bytes(3, "big")
    meta = [(0, b"\xFF\x51\x03" + tempo), (0, b"\xFF\x58\x04\x04\x02\x18\x08")]
    prog = [(0, bytes([0xC0 | channel, program]))]
    notes = [(t, msg) for t, _, _, msg in events]
    end = T * per_step
    if fmt == 0:
        tracks = [_track_chunk(meta + prog + notes, end)]
    else:
        tracks = [_track_chunk(meta, end), _track_chunk(prog + notes, end)]
    header = b"MThd" + (6).to_bytes(4, "big") + fmt.to_bytes(2, "big") + len(tracks).to_bytes(2, "big") \
        + ticks_per_beat.to_bytes(2, "big")
    return header + b"".join(tracks)


def write_midi(path, roll, **options) -> Path:
    """Write :func:`midi_bytes` of ``roll`` to ``path`` atomically (temp file + ``os.replace``)."""
    data = midi_bytes(roll, **options)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")     # same directory: os.replace is atomic
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# ------------------------------------------------------------------------------ note lists <-> rolls


def notes_to_roll(steps, num_notes: int = 128, note_offset: int = 0, *, where: str = "sequence") -> np.ndarray:
    """A list of time steps, each the list of sounding MIDI notes (the piano-roll JSON), -> (T, num_notes).

    >>> notes_to_roll([[60, 64], [], [62]], num_notes=5, note_offset=60).tolist()
    [[1, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 1, 0, 0]]
    """
    roll = np.zeros((len(steps), num_notes), np.uint8)
    for t, step in enumerate(steps):
        for n in step:
            k = int(n) - note_offset
            if not 0 <= k < num_notes:
                raise DataError(f"{where}, step {t}: MIDI note {n} is outside the range "
                                f"{note_offset}..{note_offset + num_notes - 1} of {num_notes} notes")
            roll[t, k] = 1
    return roll


def roll_to_notes(roll, note_offset: int = 0) -> list[list[int]]:
    """The inverse of :func:`notes_to_roll`: each step's sounding MIDI notes, ascending."""
    roll = np.asarray(roll)
    if roll.ndim != 2:
        raise ShapeError(f"roll: expected shape (T, K), got {roll.shape}")
    return [(np.flatnonzero(row) + note_offset).tolist() for row in roll]
