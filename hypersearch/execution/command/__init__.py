"""Trials that are shell commands: ``python train.py --lr :lr:``.

- `template`: `CommandTemplate`, the ``:name:`` placeholders and how values are rendered;
- `process`: one command's process (started under the supervisor, its own process group,
  SIGTERM then SIGKILL after a grace period) and its bounded head+tail logs;
- `folders`: each trial's output folder, from a safe form of the study name, inside the root;
- `executor`: `CommandExecutor`, many commands at once, GPU slots, timeouts, stop conditions;
- `objective`: `Command`, the user's object (``hs.Command``), with its JSON round trip.
"""

from __future__ import annotations

from hypersearch.execution.command.executor import CommandExecutor, CommandSink, CommandSpec
from hypersearch.execution.command.objective import Command
from hypersearch.execution.command.template import CommandTemplate, TemplateError

__all__ = [
    "Command",
    "CommandExecutor",
    "CommandSink",
    "CommandSpec",
    "CommandTemplate",
    "TemplateError",
]
