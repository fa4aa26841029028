"""``python -m campsync_client``: the ``campsync-tablet`` command line."""

from campsync_client._cli import main

main()
