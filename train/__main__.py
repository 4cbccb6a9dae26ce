import signal

from upscaler.errors import Terminated

from .cli import train_command


def _terminated(signum: int, frame: object) -> None:
    # As under `upscale train`: SIGTERM unwinds like Ctrl-C (the step finishes, a checkpoint is written) and exits 143.
    raise Terminated


signal.signal(signal.SIGTERM, _terminated)
train_command(prog_name="python -m train")
