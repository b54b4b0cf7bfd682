"""``python -m dfj_common`` is the ``dfj`` command."""

from dfj_common.cli import main

main()
