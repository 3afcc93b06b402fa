"""Write schedules: every worked example of the CmnRec brief, and bad arguments."""

import pytest

from chunkmnr_jax import schedule

# (kind, T, m, steps), verbatim from the brief.
WORKED_EXAMPLES = [
    ("tsc", 20, 4, (8, 14, 18, 20)),
    ("pec", 20, 4, (5, 10, 15, 20)),
    ("exc", 20, 4, (17, 18, 19, 20)),
    ("pec", 99, 4, (27, 51, 75, 99)),
    ("tsc", 99, 12, (33, 44, 54, 63, 71, 78, 84, 89, 93, 96, 98, 99)),
    ("tsc", 49, 6, (19, 29, 37, 43, 47, 49)),
    ("pec", 49, 6, (9, 17, 25, 33, 41, 49)),
    ("tsc", 9, 3, (6, 8, 9)),
    ("pec", 9, 3, (3, 6, 9)),
]


@pytest.mark.parametrize("kind,num_steps,num_slots,expected", WORKED_EXAMPLES)
def test_worked_examples(kind, num_steps, num_slots, expected):
  assert schedule.write_steps(kind, num_steps, num_slots) == expected


def test_srmn_writes_every_step():
  assert schedule.write_steps("srmn", 5, 3) == (1, 2, 3, 4, 5)
  # SRMN's memory may be larger than the sequence: it still writes every step.
  assert schedule.write_steps("srmn", 2, 6) == (1, 2)


def test_tsc_without_room_for_triangular_gaps_is_pec():
  # 2T = 18 < m(m+1) = 20: g = 0.
  assert schedule.write_steps("tsc", 9, 4) == schedule.write_steps("pec", 9, 4)
  assert schedule.write_steps("tsc", 9, 4) == (3, 5, 7, 9)


@pytest.mark.parametrize("kind", ["pec", "tsc", "exc"])
@pytest.mark.parametrize("num_steps", [1, 2, 7, 20, 49, 99])
def test_every_schedule_has_m_distinct_steps_ending_at_t(kind, num_steps):
  for num_slots in range(1, num_steps + 1):
    steps = schedule.write_steps(kind, num_steps, num_slots)
    assert len(steps) == num_slots
    assert list(steps) == sorted(set(steps))
    assert steps[0] >= 1 and steps[-1] == num_steps


@pytest.mark.parametrize("args,name", [
    (("nope", 9, 3), "kind"),
    (("pec", 9, 0), "num_slots=0"),
    (("tsc", 9, -1), "num_slots=-1"),
    (("exc", 3, 4), "num_slots=4"),
    (("pec", 0, 1), "num_steps=0"),
    (("srmn", 0, 1), "num_steps=0"),
])
def test_bad_arguments_name_the_argument(args, name):
  with pytest.raises(ValueError, match=name):
    schedule.write_steps(*args)


def test_chunks_of_a_schedule():
  steps = schedule.write_steps("tsc", 9, 3)
  lengths = schedule.chunk_lengths(steps)
  assert lengths == (6, 2, 1)
  assert schedule.chunk_runs(lengths) == ((6, 1), (2, 1), (1, 1))
  assert schedule.chunk_runs(schedule.chunk_lengths((3, 5, 7, 9))) == ((3, 1), (2, 3))
  assert schedule.read_versions(steps, 9) == (0, 0, 0, 0, 0, 1, 1, 2, 3)
