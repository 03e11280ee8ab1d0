"""The community's chain: contract artifacts, deployment, batch submission, indexing.

Pure parts (intent hashing, claim calldata, the demurrage model) live apart from the
web3 adapter (`client`), which imports web3 lazily so that the CLI starts fast.
"""
