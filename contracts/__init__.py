"""The grid's contracts: Solidity sources (``*.sol``) and their committed ABIs (``abi/*.json``).

This package exists so the ABIs travel with the supervisor as package data: read them with
``importlib.resources.files("contracts") / "abi" / "<Name>.json"`` (see ``actors.chain.abi``).
"""
