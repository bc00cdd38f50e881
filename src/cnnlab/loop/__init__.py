"""The training loop and what drives it, shared by `cnnlab.train` and `cnnlab.finetune`.

`Trainer` is the loop with its callbacks (`callbacks`), `optim` builds
optimisers and schedules, `session.run_job` trains a job into a run
directory, and `resume` decides what `--resume` may change.
"""
