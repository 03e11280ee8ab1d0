// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Balances} from "./Balances.sol";
import {AccountWord} from "./Words.sol";

/// Member payments as EIP-712 intents: the member signs, anyone (the community's relayer)
/// submits and pays the gas. The signed nonce is the payer's next nonce in that unit,
/// kept in the payer's balance word, so a payment touches one word per party; a deadline
/// bounds how long a signed intent can wait. A memo travels only as ciphertext (encrypted
/// to the payer, the payee and the board's auditor key) and the intent signs its hash.
///
/// `pay` is the hot path of a community currency and is written for gas: its arguments
/// come packed in two words, and the digest and the signature check are done in place.
/// `payWithMemo` takes the same intent unpacked.
abstract contract Payments is Balances, EIP712 {
    using AccountWord for uint256;

    bytes32 public constant PAYMENT_TYPEHASH = keccak256(
        "Payment(address from,address to,uint8 unit,uint256 amount,uint64 nonce,uint64 deadline,bytes32 memoHash)"
    );
    /// secp256k1n / 2: a larger s is the malleable twin of a valid signature (EIP-2).
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// `unitAndAmount` is `unit << 248 | amount`; `demurrage` packs the charges made to the
    /// payer (low 128 bits) and to the payee (high 128 bits) when their balances were touched.
    event Transferred(address indexed from, address indexed to, uint256 unitAndAmount, uint256 demurrage);
    /// The encrypted memo of the payment `nonce` of `from` in `unit`, emitted only when there is one.
    event Memo(address indexed from, uint8 unit, uint64 nonce, bytes ciphertext);

    error IntentExpired(uint64 deadline, uint256 blockTime);
    error BadNonce(address account, uint256 expected, uint64 given);
    error BadIntentSignature(address account, address signer);
    error BadAmount(uint256 amount);
    error SelfPayment(address account);

    /// head = from | unit << 160 | nonce << 168 (48 bits) | deadline << 216 (40 bits);
    /// body = to | amount << 160 (96 bits); (r, vs) is the EIP-2098 compact signature.
    function pay_p5CR(uint256 head, uint256 body, bytes32 r, bytes32 vs) external {
        _pay(
            address(uint160(head)),
            address(uint160(body)),
            uint8(head >> 160),
            body >> 160,
            uint64(uint48(head >> 168)),
            uint64(head >> 216),
            bytes32(0),
            r,
            vs
        );
    }

    function payWithMemo(
        address from,
        address to,
        uint8 unit,
        uint96 amount,
        uint64 nonce,
        uint64 deadline,
        bytes calldata memo,
        bytes32 r,
        bytes32 vs
    ) external {
        _pay(from, to, unit, amount, nonce, deadline, memo.length == 0 ? bytes32(0) : keccak256(memo), r, vs);
        if (memo.length != 0) emit Memo(from, unit, nonce, memo);
    }

    function nonceOf(uint8 unit, address account) external view returns (uint256) {
        return _accounts[unit][account].nonce();
    }

    function paymentDigest(
        address from,
        address to,
        uint8 unit,
        uint256 amount,
        uint64 nonce,
        uint64 deadline,
        bytes32 memoHash
    ) public view returns (bytes32 d) {
        bytes32 typehash = PAYMENT_TYPEHASH;
        bytes32 domain = _domainSeparatorV4();
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, typehash)
            mstore(add(p, 0x20), from)
            mstore(add(p, 0x40), to)
            mstore(add(p, 0x60), unit)
            mstore(add(p, 0x80), amount)
            mstore(add(p, 0xa0), nonce)
            mstore(add(p, 0xc0), deadline)
            mstore(add(p, 0xe0), memoHash)
            let structHash := keccak256(p, 0x100)
            mstore(p, 0x1901)
            mstore(add(p, 0x20), domain)
            mstore(add(p, 0x40), structHash)
            d := keccak256(add(p, 0x1e), 0x42)
        }
    }

    function _pay(
        address from,
        address to,
        uint8 unit,
        uint256 amount,
        uint64 nonce,
        uint64 deadline,
        bytes32 memoHash,
        bytes32 r,
        bytes32 vs
    ) private {
        if (block.timestamp > deadline) revert IntentExpired(deadline, block.timestamp);
        if (amount == 0) revert BadAmount(amount);
        if (from == to) revert SelfPayment(from);
        // Both parties' slots of _accounts[unit], hashed once each.
        uint256 fromSlot;
        uint256 toSlot;
        uint256 wf;
        assembly ("memory-safe") {
            mstore(0x00, unit)
            mstore(0x20, _accounts.slot)
            mstore(0x20, keccak256(0x00, 0x40))
            mstore(0x00, from)
            fromSlot := keccak256(0x00, 0x40)
            mstore(0x00, to)
            toSlot := keccak256(0x00, 0x40)
            wf := sload(fromSlot)
        }
        if (nonce != uint32(wf >> 184)) revert BadNonce(from, uint32(wf >> 184), nonce);
        address signer = _recover(paymentDigest(from, to, unit, amount, nonce, deadline, memoHash), r, vs);
        if (signer != from) revert BadIntentSignature(from, signer);
        uint256 uw = _units[unit];
        if ((uw >> 248) & 3 != 1) _activeUnit(unit); // reverts: unknown unit or paused
        uint256 c1;
        uint256 c2;
        uint256 wt;
        (uw, wf, c1) = _moved(unit, uw, from, wf, -int256(amount), 1, false);
        assembly ("memory-safe") {
            wt := sload(toSlot)
        }
        (uw, wt, c2) = _moved(unit, uw, to, wt, int256(amount), 0, false);
        assembly ("memory-safe") {
            sstore(fromSlot, wf)
            sstore(toSlot, wt)
        }
        // Written only when a payment reached the fund or overflowed an account's owed field.
        if (uw != _units[unit]) _units[unit] = uw;
        emit Transferred(from, to, (uint256(unit) << 248) | amount, c1 | (c2 << 128));
    }

    /// ecrecover of an EIP-2098 signature; address(0) for a malformed or high-s one.
    function _recover(bytes32 digest, bytes32 r, bytes32 vs) private view returns (address signer) {
        assembly ("memory-safe") {
            let s := and(vs, 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff)
            if iszero(gt(s, HALF_N)) {
                let p := mload(0x40)
                mstore(p, digest)
                mstore(add(p, 0x20), add(shr(255, vs), 27))
                mstore(add(p, 0x40), r)
                mstore(add(p, 0x60), s)
                mstore(0, 0)
                pop(staticcall(gas(), 1, p, 0x80, 0, 0x20))
                signer := mload(0)
            }
        }
    }
}
