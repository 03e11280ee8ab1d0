// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ILedger} from "./ILedger.sol";
import {MemberIntents} from "./MemberIntents.sol";
import {Month} from "./Month.sol";
import {Succession} from "./Succession.sol";

/// Helpers: a member lets another act for them — a relative paying on behalf of an older
/// member up to a monthly amount, or only seeing the account — until a date, revocable at
/// any time. A grant is the member's signed intent; a payment by a helper is the
/// helper's signed intent, checked against the grant and this calendar month's (UTC)
/// spending, and moved by the ledger under its own rules. `PaidFor` names the member, the
/// helper and the payee, so every statement shows who acted for whom; read-only access is
/// enforced by the app, which asks `canView`. When recovery replaces a helper A by B, the
/// grants made to A (with this month's spending) are B's, and A acts for nobody.
contract Helpers is MemberIntents, Succession {
    bytes32 public constant GRANT_TYPEHASH = keccak256(
        "Grant(address member,address helper,uint8 kind,uint8 unit,uint256 monthly,uint64 expiresAt,uint64 nonce,uint64 deadline)"
    );
    bytes32 public constant REVOKE_TYPEHASH =
        keccak256("Revoke(address member,address helper,uint64 nonce,uint64 deadline)");
    bytes32 public constant PAY_FOR_TYPEHASH = keccak256(
        "PayFor(address helper,address member,address to,uint8 unit,uint256 amount,bytes32 memoHash,uint64 nonce,uint64 deadline)"
    );
    uint8 public constant VIEW = 1;
    uint8 public constant PAY = 2; // pays up to `monthly`, and sees the account

    struct Grant {
        uint8 kind;
        uint8 unit;
        uint40 expiresAt;
        uint32 month;
        uint96 monthly;
        uint96 spent; // in `month`
    }

    ILedger public immutable LEDGER;
    mapping(address => mapping(address => Grant)) public grants;

    event Granted(address indexed member, address indexed helper, uint8 kind, uint8 unit, uint96 monthly, uint40 expiresAt);
    event Revoked(address indexed member, address indexed helper);
    event PaidFor(
        address indexed member, address indexed helper, address indexed to, uint8 unit, uint256 amount, uint96 spentThisMonth, bytes memo
    );

    error BadGrant(address member, address helper, uint8 kind);
    error NoGrant(address member, address helper);
    error GrantExpired(address member, address helper, uint40 expiresAt);
    error NotAllowedToPay(address member, address helper, uint8 unit);
    error AboveAllowance(address member, address helper, uint96 monthly, uint256 spentAfter);
    error HelperReplaced(address helper, address by);

    constructor(ILedger ledger) EIP712("Quartier Helpers", "1") {
        LEDGER = ledger;
    }

    function grant(
        address member,
        address helper,
        uint8 kind,
        uint8 unit,
        uint96 monthly,
        uint40 expiresAt,
        uint64 nonce,
        uint64 deadline,
        bytes calldata sig
    ) external {
        _useIntent(
            member,
            keccak256(abi.encode(GRANT_TYPEHASH, member, helper, kind, unit, monthly, expiresAt, nonce, deadline)),
            nonce,
            deadline,
            sig
        );
        if (
            helper == member || helper == address(0) || (kind != VIEW && kind != PAY) || expiresAt <= block.timestamp
                || replacedBy[helper] != address(0)
        ) {
            revert BadGrant(member, helper, kind);
        }
        grants[member][_holder(member, helper)] = Grant(kind, unit, expiresAt, Month.index(block.timestamp), monthly, 0);
        emit Granted(member, helper, kind, unit, monthly, expiresAt);
    }

    function revoke(address member, address helper, uint64 nonce, uint64 deadline, bytes calldata sig) external {
        _useIntent(member, keccak256(abi.encode(REVOKE_TYPEHASH, member, helper, nonce, deadline)), nonce, deadline, sig);
        if (replacedBy[helper] != address(0) || grants[member][_holder(member, helper)].kind == 0) {
            revert NoGrant(member, helper);
        }
        for (address h = helper; h != address(0); h = replaces[h]) {
            delete grants[member][h];
        }
        emit Revoked(member, helper);
    }

    /// A payment from `member` to `to`, signed by `helper`; `memo` is ciphertext.
    function payFor(
        address helper,
        address member,
        address to,
        uint8 unit,
        uint256 amount,
        bytes calldata memo,
        uint64 nonce,
        uint64 deadline,
        bytes calldata sig
    ) external {
        bytes32 memoHash = memo.length == 0 ? bytes32(0) : keccak256(memo);
        _useIntent(
            helper,
            keccak256(abi.encode(PAY_FOR_TYPEHASH, helper, member, to, unit, amount, memoHash, nonce, deadline)),
            nonce,
            deadline,
            sig
        );
        if (replacedBy[helper] != address(0)) revert HelperReplaced(helper, replacedBy[helper]);
        Grant storage g = grants[member][_holder(member, helper)];
        if (g.kind == 0) revert NoGrant(member, helper);
        if (block.timestamp >= g.expiresAt) revert GrantExpired(member, helper, g.expiresAt);
        if (g.kind != PAY || g.unit != unit) revert NotAllowedToPay(member, helper, unit);
        uint32 month = Month.index(block.timestamp);
        uint256 spent = (g.month == month ? g.spent : 0) + amount;
        if (spent > g.monthly) revert AboveAllowance(member, helper, g.monthly, spent);
        g.month = month;
        g.spent = uint96(spent);
        LEDGER.move(unit, member, to, amount);
        emit PaidFor(member, helper, to, unit, amount, uint96(spent), memo);
    }

    function canView(address member, address helper) external view returns (bool) {
        Grant storage g = _grantOf(member, helper);
        return g.kind != 0 && block.timestamp < g.expiresAt;
    }

    /// What the helper may still pay this month.
    function remaining(address member, address helper) external view returns (uint256) {
        Grant storage g = _grantOf(member, helper);
        if (g.kind != PAY || block.timestamp >= g.expiresAt) return 0;
        return g.monthly - (g.month == Month.index(block.timestamp) ? g.spent : 0);
    }

    /// The grant `helper` holds from `member`: its own, or the one made to the account it
    /// replaced; a replaced helper holds none.
    function grantOf(address member, address helper) public view returns (Grant memory) {
        return _grantOf(member, helper);
    }

    function _grantOf(address member, address helper) private view returns (Grant storage) {
        return grants[member][replacedBy[helper] != address(0) ? address(0) : _holder(member, helper)];
    }

    /// The key under which `helper`'s grant from `member` is stored (the helper's, or an
    /// account's it replaced), or `helper` when there is none; so one grant at most is live
    /// along a line of replacements.
    function _holder(address member, address helper) private view returns (address) {
        for (address h = helper; h != address(0); h = replaces[h]) {
            if (grants[member][h].kind != 0) return h;
        }
        return helper;
    }

    function _successionLedger() internal view override returns (ILedger) {
        return LEDGER;
    }
}
