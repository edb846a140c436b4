"""The global flags (-address, -token, -json) after the subcommand too, as ``nomad`` has it:
``heteroflow service list -json`` means the same as ``heteroflow -json service list``.

argparse reads a parent's options only before the subcommand, so each subparser gets a copy
whose default is SUPPRESS: given after the subcommand it sets the value, absent it leaves
the one parsed before (or the parent's default) alone.
"""

from __future__ import annotations

import argparse

GLOBAL_DESTS = ("address", "token", "json")


def accept_global_flags_anywhere(parser: argparse.ArgumentParser) -> None:
    originals = [a for a in parser._actions if a.dest in GLOBAL_DESTS]
    for sub in _subparsers(parser):
        _copy_flags(sub, originals)


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += [child, *_subparsers(child)]
    return found


def _copy_flags(parser: argparse.ArgumentParser, originals: list[argparse.Action]) -> None:
    taken = {s for a in parser._actions for s in a.option_strings}
    for action in originals:
        if any(s in taken for s in action.option_strings):
            continue  # a subcommand's own flag of that name wins
        if isinstance(action, argparse._StoreTrueAction):
            parser.add_argument(*action.option_strings, dest=action.dest, action="store_true",
                                default=argparse.SUPPRESS, help=action.help)
        else:
            parser.add_argument(*action.option_strings, dest=action.dest,
                                default=argparse.SUPPRESS, help=action.help)
