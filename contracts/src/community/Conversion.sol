// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ILedger} from "./ILedger.sol";
import {MemberIntents} from "./MemberIntents.sol";
import {Month} from "./Month.sol";

/// Conversion out: a member redeems a balance to the community fund, which pays them off
/// chain (in euros, say), within caps governance sets per unit: per member per calendar
/// month (UTC) and for the whole community per month. A cap of zero closes conversion in
/// that unit. Each redemption emits `Redeemed`, carrying the member's payout reference
/// (the hash of encrypted payment details kept off chain) for the treasurer to pay.
contract Conversion is AccessControl, MemberIntents {
    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    bytes32 public constant REDEEM_TYPEHASH = keccak256(
        "Redeem(address member,uint8 unit,uint256 amount,bytes32 payoutRef,uint64 nonce,uint64 deadline)"
    );

    ILedger public immutable LEDGER;
    /// unit => member cap | global cap << 128, base units per month.
    mapping(uint8 => uint256) internal _caps;
    /// unit => month => member => redeemed; address(0) holds the month's total.
    mapping(uint8 => mapping(uint32 => mapping(address => uint256))) public redeemed;

    event CapsSet(uint8 indexed unit, uint128 memberMonthly, uint128 globalMonthly);
    event Redeemed(
        address indexed member, uint8 indexed unit, uint256 amount, uint32 indexed month, bytes32 payoutRef, uint256 nonce
    );

    error NotAMember(address account);
    error ZeroAmount();
    error AboveMemberCap(address member, uint8 unit, uint32 month, uint256 cap, uint256 redeemedAfter);
    error AboveGlobalCap(uint8 unit, uint32 month, uint256 cap, uint256 redeemedAfter);

    constructor(ILedger ledger, address admin) EIP712("Quartier Conversion", "1") {
        LEDGER = ledger;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GOVERNOR_ROLE, admin);
    }

    function setCaps(uint8 unit, uint128 memberMonthly, uint128 globalMonthly) external onlyRole(GOVERNOR_ROLE) {
        _caps[unit] = uint256(memberMonthly) | (uint256(globalMonthly) << 128);
        emit CapsSet(unit, memberMonthly, globalMonthly);
    }

    function capsOf(uint8 unit) external view returns (uint128 memberMonthly, uint128 globalMonthly) {
        uint256 c = _caps[unit];
        return (uint128(c), uint128(c >> 128));
    }

    function monthOf(uint256 ts) external pure returns (uint32) {
        return Month.index(ts);
    }

    /// Moves `amount` of `unit` from the member to the fund, on the member's signed intent.
    function redeem(
        address member,
        uint8 unit,
        uint256 amount,
        bytes32 payoutRef,
        uint64 nonce,
        uint64 deadline,
        bytes calldata sig
    ) external {
        _useIntent(
            member,
            keccak256(abi.encode(REDEEM_TYPEHASH, member, unit, amount, payoutRef, nonce, deadline)),
            nonce,
            deadline,
            sig
        );
        if (amount == 0) revert ZeroAmount();
        if (!LEDGER.isMember(member)) revert NotAMember(member);
        uint32 month = Month.index(block.timestamp);
        uint256 caps = _caps[unit];
        uint256 mine = redeemed[unit][month][member] + amount;
        if (mine > uint128(caps)) revert AboveMemberCap(member, unit, month, uint128(caps), mine);
        uint256 all = redeemed[unit][month][address(0)] + amount;
        if (all > caps >> 128) revert AboveGlobalCap(unit, month, caps >> 128, all);
        redeemed[unit][month][member] = mine;
        redeemed[unit][month][address(0)] = all;
        LEDGER.move(unit, member, LEDGER.FUND(), amount);
        emit Redeemed(member, unit, amount, month, payoutRef, nonce);
    }
}
