"""Standard MIDI files: a hand-built multi-track file, round trips roll -> file -> roll, bad files."""

import io

import numpy as np
import pytest

from seqmodels.core.errors import ConfigError, DataError
from seqmodels.data.midi import (Note, midi_bytes, notes_to_roll, parse_midi, read_midi, read_midi_roll,
                                 roll_to_notes, write_midi)


def chunk(kind: bytes, body: bytes) -> bytes:
    return kind + len(body).to_bytes(4, "big") + body


HEADER = b"MThd" + bytes.fromhex("00000006 0001 0003 0060")      # format 1, 3 tracks, 96 ticks per beat
CONDUCTOR = bytes.fromhex(
    "00 FF03 05") + b"Chor." + bytes.fromhex(                     # track name
    "00 FF58 04 04021808"                                         # time signature 4/4
    "00 FF51 03 07A120"                                           # tempo 500000 µs/beat (120 bpm) at 0
    "8300 FF51 03 0F4240"                                         # delta 384: tempo 1000000 µs/beat (60 bpm)
    "00 FF2F00")
VOICES = bytes.fromhex(                                           # channel 0, running status throughout
    "00 C0 13"                                                    # program change 19 (one data byte)
    "00 90 48 64"                                                 # t=0    note on 72
    "00 43 50"                                                    # t=0    (running) note on 67 vel 80
    "60 48 00"                                                    # t=96   (running) 72 off (velocity 0)
    "00 4C 64"                                                    # t=96   (running) note on 76
    "00 F0 03 7E09F7"                                             # t=96   sysex: cancels running status
    "60 80 4C 40"                                                 # t=192  explicit note off 76
    "00 FF01 02 6869"                                             # t=192  text meta "hi"
    "00 90 47 64"                                                 # t=192  note on 71 (status needed again)
    "8140 47 00"                                                  # t=384  (running) 71 off
    "00 43 00"                                                    # t=384  (running) 67 off
    "00 FF2F00")
BASS = bytes.fromhex(
    "00 91 30 50"                                                 # t=0    channel 1: note on 48
    "00 99 24 64"                                                 # t=0    channel 10 (drums): note on 36
    "30 89 24 00"                                                 # t=48   drum off
    "8110 81 30 40"                                               # t=192  note off 48
    "00 91 2B 50"                                                 # t=192  note on 43, never turned off
    "00 B1 07 64"                                                 # t=192  control change (volume)
    "8300 FF2F00")                                                # t=576  end of track: 43 ends here
HAND_MADE = HEADER + chunk(b"MTrk", CONDUCTOR) + chunk(b"XFIH", b"abc") + chunk(b"MTrk", VOICES) \
    + chunk(b"MTrk", BASS)


def roll_of(steps, T):
    roll = np.zeros((T, 128), np.uint8)
    for t, notes in enumerate(steps):
        roll[t, notes] = 1
    return roll


def test_hand_made_format1_file_notes_and_tempo():
    f = parse_midi(HAND_MADE, "hand.mid")
    assert (f.format, f.num_tracks, f.ticks_per_beat, f.end_tick) == (1, 3, 96, 576)
    assert f.tempos == [(0, 500_000), (384, 1_000_000)]
    assert sorted(f.notes) == sorted([
        Note(72, 0, 96, 0, 100, 1), Note(67, 0, 384, 0, 80, 1), Note(76, 96, 192, 0, 100, 1),
        Note(71, 192, 384, 0, 100, 1), Note(48, 0, 192, 1, 80, 2), Note(36, 0, 48, 9, 100, 2),
        Note(43, 192, 576, 1, 80, 2)])
    # 384 ticks at 0.5 s per beat = 2 s, then 1 s per beat
    assert np.allclose(f.seconds([0, 96, 384, 432, 576]), [0.0, 0.5, 2.0, 2.5, 4.0])


def test_hand_made_file_to_piano_roll():
    f = parse_midi(HAND_MADE, "hand.mid")
    expected = roll_of([[48, 67, 72], [48, 67, 76], [43, 67, 71], [43, 67, 71], [43], [43]], 6)
    assert np.array_equal(f.piano_roll(steps_per_beat=1), expected)
    drums = expected.copy()
    drums[0, 36] = 1
    assert np.array_equal(f.piano_roll(steps_per_beat=1, include_drums=True), drums)
    # by the clock, 2 steps per second: 120 bpm for 4 beats (= 4 steps), then 60 bpm doubles each beat
    by_time = roll_of([[48, 67, 72], [48, 67, 76], [43, 67, 71], [43, 67, 71], [43], [43], [43], [43]], 8)
    assert np.array_equal(f.piano_roll(steps_per_second=2), by_time)


def test_hand_made_file_agrees_with_mido():
    mido = pytest.importorskip("mido")
    plain = HEADER + chunk(b"MTrk", CONDUCTOR) + chunk(b"MTrk", VOICES) + chunk(b"MTrk", BASS)  # mido
    ours = parse_midi(plain)                                                         # rejects XFIH
    m = mido.MidiFile(file=io.BytesIO(plain))
    ons = []
    for track in m.tracks:
        t = 0
        for msg in track:
            t += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                ons.append((msg.note, t, msg.channel))
    assert sorted(ons) == sorted((n.pitch, n.start, n.channel) for n in ours.notes)


@pytest.mark.parametrize("steps_per_beat, ticks, fmt", [(1, 480, 0), (2, 96, 1), (4, 384, 0), (3, 3, 1)])
def test_roll_file_roll_round_trip(tmp_path, steps_per_beat, ticks, fmt):
    rng = np.random.default_rng(steps_per_beat)
    roll = np.zeros((40, 128), np.uint8)
    roll[:, 40:80] = rng.random((40, 40)) < 0.15
    roll[0, 40] = roll[-1, 79] = 1                        # notes at the very start and at the last step
    roll[30:] = 0                                         # trailing rest is kept (End-of-Track at step 40)
    roll[30:, 79] = 0
    roll[-1, 79] = 1
    path = write_midi(tmp_path / "r.mid", roll, steps_per_beat=steps_per_beat, ticks_per_beat=ticks, fmt=fmt)
    assert np.array_equal(read_midi_roll(path, steps_per_beat), roll)
    assert [p.name for p in tmp_path.iterdir()] == ["r.mid"]   # no temp file left behind


def test_writer_note_offset_and_mido_reads_it():
    roll = np.zeros((6, 88), np.uint8)
    roll[0:3, 39] = 1                                     # column 39 + 21 = MIDI 60, held three steps
    roll[3, 39] = roll[4, 43] = 1                         # a tie continues: one note 60 over steps 0..3
    data = midi_bytes(roll, note_offset=21, steps_per_beat=1, ticks_per_beat=100, bpm=60, velocity=90)
    f = parse_midi(data)
    assert [(n.pitch, n.start, n.end, n.velocity) for n in f.notes] == [(60, 0, 400, 90), (64, 400, 500, 90)]
    assert f.tempos == [(0, 1_000_000)] and f.end_tick == 600
    mido = pytest.importorskip("mido")
    m = mido.MidiFile(file=io.BytesIO(data))
    assert m.ticks_per_beat == 100 and m.length == pytest.approx(6.0)
    assert [(x.note, x.velocity) for x in m.tracks[0] if x.type == "note_on"] == [(60, 90), (60, 0), (64, 90),
                                                                                  (64, 0)]


def test_reads_a_file_written_by_mido_with_note_off_messages(tmp_path):
    mido = pytest.importorskip("mido")
    m = mido.MidiFile(type=1, ticks_per_beat=120)
    a, b = mido.MidiTrack(), mido.MidiTrack()
    a += [mido.Message("note_on", note=62, velocity=70, time=0), mido.Message("note_off", note=62, time=240),
          mido.Message("note_on", note=65, velocity=70, time=120), mido.Message("note_off", note=65, time=120)]
    b += [mido.Message("note_on", note=50, velocity=70, time=120, channel=2),
          mido.Message("note_off", note=50, time=360, channel=2)]
    m.tracks += [a, b]
    m.save(tmp_path / "m.mid")
    roll = read_midi_roll(tmp_path / "m.mid", steps_per_beat=2)  # 60 ticks per step
    assert roll_to_notes(roll) == [[62], [62], [50, 62], [50, 62], [50], [50], [50, 65], [50, 65]]


def test_not_midi_names_the_file_and_offset(tmp_path):
    p = tmp_path / "song.mid"
    p.write_text("this is not music")
    with pytest.raises(DataError, match=r"song\.mid: byte 0: expected the MIDI header 'MThd'"):
        read_midi(p)


ONE_TRACK = HEADER.replace(b"\x00\x01\x00\x03", b"\x00\x00\x00\x01")     # format 0, 1 track
EVENTS_AT = len(ONE_TRACK) + 8                                    # first byte of the track's events


@pytest.mark.parametrize("data, message", [
    (HAND_MADE[:-7], f"byte {len(HAND_MADE) - len(BASS)}: track 2 claims {len(BASS)} bytes but only "
                     f"{len(BASS) - 7} remain"),
    (HEADER + chunk(b"MTrk", CONDUCTOR), f"byte {len(HEADER) + 8 + len(CONDUCTOR)}: the file ends after 1 "
                                         "of the 3 tracks"),
    (ONE_TRACK + chunk(b"MTrk", bytes.fromhex("00 40 40")),
     f"byte {EVENTS_AT + 1}: data byte 0x40 without a status byte"),
    (HEADER.replace(b"\x00\x01\x00\x03", b"\x00\x02\x00\x01"), "byte 8: MIDI format 2 is not supported"),
    (ONE_TRACK + chunk(b"MTrk", bytes.fromhex("FFFFFFFF7F 90 40 40")),
     f"byte {EVENTS_AT}: delta time: variable-length number longer than 4 bytes"),
    (ONE_TRACK + chunk(b"MTrk", bytes.fromhex("00 90 40 40 00 F8")), f"byte {EVENTS_AT + 5}: status byte 0xF8"),
    (ONE_TRACK + chunk(b"MTrk", bytes.fromhex("00 90 40")) + b"MTrk",
     f"byte {EVENTS_AT + 3}: channel message data needs 1 byte\\(s\\) but track 0 ends"),
    (ONE_TRACK + chunk(b"MTrk", bytes.fromhex("00 90 40 C0")),
     f"byte {EVENTS_AT + 1}: channel message 0x90 has data byte >= 0x80"),
])
def test_broken_files_name_the_byte(data, message):
    with pytest.raises(DataError, match="broken.mid: " + message):
        parse_midi(data, "broken.mid")


def test_note_lists_and_rolls():
    steps = [[60, 64], [], [62, 127], [0]]
    roll = notes_to_roll(steps)
    assert roll.shape == (4, 128) and roll.sum() == 5 and roll[2, 127] == 1
    assert roll_to_notes(roll) == steps
    assert roll_to_notes(notes_to_roll(steps[:2], 10, 58), note_offset=58) == steps[:2]
    with pytest.raises(DataError, match=r"chorale 3, step 1: MIDI note 70 is outside the range 58\.\.67"):
        notes_to_roll([[60], [70]], 10, 58, where="chorale 3")


def test_writer_rejects_bad_rolls_and_options():
    with pytest.raises(DataError, match="0/1"):
        midi_bytes(np.full((2, 4), 2))
    with pytest.raises(DataError, match="MIDI note 130"):
        midi_bytes(np.eye(4, dtype=np.uint8), note_offset=127)
    with pytest.raises(ConfigError, match="multiple of steps_per_beat"):
        midi_bytes(np.eye(4), steps_per_beat=3, ticks_per_beat=480 + 1)
    with pytest.raises(ConfigError, match="velocity"):
        midi_bytes(np.eye(4), velocity=0)
