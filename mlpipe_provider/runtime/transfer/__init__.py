"""The data-movement engine: every byte a running step moves between datastores goes through here.

One job per module, so the rules are written once:

* ``retry``: the one retry policy (which errors are transient, how many attempts, the backoff)
  and its two front ends, ``Retrier`` for datastore calls and ``with_retries`` for copies;
* ``copy``: one file, local or fsspec on either side, streamed and hashed on the way, replaced
  atomically where readers may look; a server-side copy inside one blob account;
* ``verify``: digests of what is at a path and the checks that what landed is what was read;
* ``place``: make a destination hold a set of digested files, copying only what differs;
* ``remember``: seed the remote digest cache with what a copy wrote;
* ``filesystems``: which kind of filesystem an fsspec instance is, as far as the above care.

Used by ``DataTransferStep`` (``runtime/data_transfer``), step staging (``runtime/staging``),
dataset inputs and destinations (``runtime/datasets``) and reuse fingerprints
(``runtime/reuse``).
"""
