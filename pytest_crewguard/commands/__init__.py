"""The ``crewguard`` command's subcommands, one module each.

A subcommand module has ``NAME``, ``HELP`` and ``add_arguments(parser)`` and
``run(args) -> int``; :mod:`pytest_crewguard.cli` lists the modules. Shared helpers live in
:mod:`.recorded` (cassettes read and priced) and :mod:`.conversation` (what was said).
"""
