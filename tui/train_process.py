"""A training with its progress bar, in this process or in one of its own (for commands that
train several adapters in a row).

A process that has trained keeps much of the memory it took (allocator arenas, torch's caches),
and its peak RSS only grows: ``experiment finetune``'s fourth training in one process peaked at
20.9 GB on a 24 GB machine. A spawned process per training hands everything back when it ends,
and the peak it reports is that training's own.
"""

from __future__ import annotations

import _thread
import multiprocessing
import threading
import traceback
from pathlib import Path
from typing import Any

from saferlab.engine.errors import SaferlabError

from .literal import LiteralConsole


def run_training(store: Any, spec: Any, resume: Any = None) -> Any:
    """Train with a progress bar on stderr; Ctrl-C stops after the current step, keeping a
    checkpoint."""
    from saferlab.db.trainings import TrainingLog

    from .progress import TrainingView, run_in_thread

    err = LiteralConsole(stderr=True)
    cancel = threading.Event()
    log = TrainingLog(store)

    def work():
        from saferlab.engine.finetune.train import train

        return train(spec, log, view, cancel, resume, hash_cache=store)

    with TrainingView(err, enabled=err.is_terminal) as view:
        return run_in_thread(work, cancel, err,
                             "stopping after the current step, with a checkpoint (Ctrl-C "
                             "again to quit now)")


def train_apart(db: Path, spec: Any, resume: Any = None) -> Any:
    """``run_training`` in a spawned process; returns its TrainOutcome. Ctrl-C reaches the child
    too (one process group): it stops after the current step with a checkpoint, as in-process."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(str(db), spec, resume, send),
                        name=f"saferlab-train-{spec.name}")
    child.start()
    send.close()
    message = None
    interrupts = 0
    while message is None:
        try:
            if receive.poll(0.2):
                message = receive.recv()
            elif not child.is_alive():
                message = receive.recv() if receive.poll() else ("gone", None)
        except EOFError:
            message = ("gone", None)
        except KeyboardInterrupt:
            interrupts += 1  # the child got it too and is stopping; a second one ends both
            if interrupts > 1:
                child.join(5)
                if child.is_alive():
                    child.terminate()
                raise
    child.join()
    kind, value = message
    if kind == "outcome":
        return value
    if kind == "error":
        raise SaferlabError(*value)
    if kind == "crash":
        raise RuntimeError(f"training {spec.name} failed in its own process:\n{value}")
    if interrupts:
        raise KeyboardInterrupt
    raise RuntimeError(f"training {spec.name}: its process ended with exit code "
                       f"{child.exitcode} and no result")


def _follow_parent(parent: Any) -> None:
    """When ``parent`` (a process with join()) ends, stop this process's training as Ctrl-C
    does: after the current step, with a checkpoint. A parent killed (SIGTERM, SIGKILL, a
    closed terminal) otherwise left its training running on alone, holding the CPU."""
    def watch() -> None:
        parent.join()
        _thread.interrupt_main()

    threading.Thread(target=watch, name="saferlab-follow-parent", daemon=True).start()


def _child(db: str, spec: Any, resume: Any, send: Any) -> None:
    from saferlab.db import Store

    parent = multiprocessing.parent_process()
    if parent is not None:
        _follow_parent(parent)

    def tell(message: tuple[str, Any]) -> None:
        try:
            send.send(message)
        except OSError:
            pass  # the parent is gone; the database holds what was done

    try:
        outcome = run_training(Store(Path(db)), spec, resume)
    except SaferlabError as exc:
        tell(("error", (exc.message, exc.exit_code)))
    except KeyboardInterrupt:
        return  # the second Ctrl-C: quit now, as the parent does
    except BaseException:
        tell(("crash", traceback.format_exc()))
    else:
        tell(("outcome", outcome))
    finally:
        send.close()
