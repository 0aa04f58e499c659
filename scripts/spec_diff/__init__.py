"""spec-diff: what a change to the contract means for the clients built on it.

`schemas` and `changes` read two contracts and classify every difference from the client's
side; `evidence` proves each break with a value one contract accepts and the other refuses;
`report` puts them together; `releases` holds released contracts, versions and the changelog to
semantic versioning; `__main__` is `make spec-diff`, `make check-spec` and `make spec-release`.
Not part of the installed package: it needs hypothesis, a development dependency.
"""
