"""Many fine-tuned tasks on one frozen backbone, answered in one mixed batch."""

import numpy as np
import pytest

from configs import nextitnet, peterrec
from peterrec_jax import serve
from seqrec import experiment
from seqrec.errors import InputError

# Every test reads the same workdirs: one worker builds them once (pytest.ini;
# session scope, see tests/seqrec/test_recommend.py).
pytestmark = pytest.mark.xdist_group("serve")

TASKS = ("crossdomain", "gender", "occupation")


@pytest.fixture(scope="session")
def workdirs(tmp_path_factory):
  root = tmp_path_factory.mktemp("serve")
  config = nextitnet.get_config("tiny")
  config.update(dict(num_steps=2, select_metric="", num_devices=1))  # a cheaper compile
  experiment.run(config, str(root / "pretrained"))
  out = {}
  for task in TASKS + ("fineall",):
    config = peterrec.get_config("tiny")
    config.update(dict(pretrained=str(root / "pretrained"), num_steps=3, num_devices=1,
                       task="gender" if task == "fineall" else task,
                       method="fineall" if task == "fineall" else "peterrec"))
    experiment.run(config, str(root / task))
    out[task] = str(root / task)
  return out


def test_a_mixed_batch_gives_what_each_task_gives_alone(workdirs):
  tasks = serve.load([workdirs[t] for t in TASKS])
  fn = serve.score_fn(tasks)
  rng = np.random.default_rng(0)
  seqs, ids, rows = [], [], []
  for task_id, model in enumerate(tasks.models):
    picked = rng.choice(len(model.built.queries.seq), 5, replace=False)
    seqs.append(model.built.queries.seq[picked])
    ids += [task_id] * 5
    rows.append(picked)
  order = rng.permutation(15)  # users of different tasks interleaved
  seq, task = np.concatenate(seqs)[order], np.array(ids, np.int32)[order]
  mixed = np.asarray(fn(seq, task))
  for task_id, model in enumerate(tasks.models):
    alone = np.asarray(model.built.task.score(model.params, {"seq": seqs[task_id]}))
    width = tasks.widths[task_id]
    got = mixed[np.argsort(order)][task_id * 5:(task_id + 1) * 5]
    np.testing.assert_allclose(got[:, :width], alone[:, :width], rtol=1e-5, atol=1e-5)
    assert np.all(np.isneginf(got[:, width:]))
    np.testing.assert_array_equal(np.argmax(got, 1), np.argmax(alone[:, :width], 1))


def test_one_backbone_plus_patches_is_what_is_held(workdirs):
  tasks = serve.load([workdirs[t] for t in TASKS])
  trained = sum(v[0].nbytes for v in tasks.stacked.values())
  backbone = sum(v.nbytes for v in tasks.frozen.values())
  assert tasks.nbytes() == backbone + len(TASKS) * trained
  full = sum(np.asarray(v).nbytes for v in
             __import__("jax").tree.leaves(tasks.models[0].params))
  assert tasks.nbytes() < 0.6 * len(TASKS) * full  # against one full model per task


def test_a_task_with_another_backbone_is_refused(workdirs):
  with pytest.raises(InputError, match=r"frozen parameters \(sha256 .*\) differ"):
    serve.load([workdirs["gender"], workdirs["fineall"]])
