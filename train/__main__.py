from .cli import train_command

train_command(prog_name="python -m train")
