"""Subcommands of the ``napari-higt`` command line, one module each.

Every module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
``napari_higt.cli`` lists them. Modules import their heavy dependencies inside ``run`` so
``napari-higt --help`` stays fast.
"""
