// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// Members act through EIP-712 intents that a relayer submits: the member holds no coin
/// for gas. Each intent carries the signer's next nonce in this contract (a replay is
/// refused) and a deadline (a stale intent is refused); the signature is 65 bytes
/// r || s || v, high-s refused (OpenZeppelin ECDSA).
abstract contract MemberIntents is EIP712 {
    mapping(address => uint256) public nonces;

    error IntentExpired(uint64 deadline, uint256 blockTime);
    error BadNonce(address account, uint256 expected, uint64 given);
    error BadIntentSignature(address account, address signer);

    /// Checks an intent of `signer` whose struct hash (nonce and deadline included) is
    /// `structHash`, and uses up its nonce.
    function _useIntent(address signer, bytes32 structHash, uint64 nonce, uint64 deadline, bytes calldata sig)
        internal
    {
        uint256 expected = nonces[signer];
        if (nonce != expected) revert BadNonce(signer, expected, nonce);
        nonces[signer] = expected + 1;
        _checkSigned(signer, structHash, deadline, sig);
    }

    /// Checks a signature and a deadline without a nonce, for intents that are used once
    /// by construction (an offer, marked used when taken).
    function _checkSigned(address signer, bytes32 structHash, uint64 deadline, bytes calldata sig) internal view {
        if (block.timestamp > deadline) revert IntentExpired(deadline, block.timestamp);
        (address got,,) = ECDSA.tryRecover(_hashTypedDataV4(structHash), sig);
        if (got != signer || signer == address(0)) revert BadIntentSignature(signer, got);
    }
}
