"""The subcommands, by name: each takes the parsed arguments and an Output, returns
the exit code, and raises ImgforgeError for expected failures."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from imgforge.commands.authoring import cmd_completion, cmd_import, cmd_init, cmd_schema
from imgforge.commands.building import cmd_bake, cmd_build, cmd_plan, cmd_render, cmd_shell
from imgforge.commands.caching import cmd_cache
from imgforge.commands.common import Output
from imgforge.commands.inspecting import cmd_doctor, cmd_graph, cmd_verify

COMMANDS: dict[str, Callable[[argparse.Namespace, Output], int]] = {
    "build": cmd_build,
    "render": cmd_render,
    "plan": cmd_plan,
    "graph": cmd_graph,
    "verify": cmd_verify,
    "shell": cmd_shell,
    "schema": cmd_schema,
    "doctor": cmd_doctor,
    "init": cmd_init,
    "import": cmd_import,
    "bake": cmd_bake,
    "completion": cmd_completion,
    "cache": cmd_cache,
}
