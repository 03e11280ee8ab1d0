// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// Members (accounts), meter points and gateways. A gateway is a secp256k1 key at a home;
/// it belongs to one member and one meter point, and is trusted from `activeFrom` until
/// `activeTo` (exclusive; 0 = still trusted). Revocation sets `activeTo` to the moment the
/// key stopped being trustworthy, which may lie in the past (a key found compromised): a
/// claim counts only for a period that lies entirely inside the gateway's active window.
/// A revoked gateway key is never re-registered; a new key is a new gateway.
abstract contract Registry is AccessControl {
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");

    /// Gateway roles (bit mask): what the gateway measures.
    uint8 public constant ROLE_GRID = 1; // the utility meter: imports and exports
    uint8 public constant ROLE_PRODUCTION = 2; // the inverter: production

    struct Member {
        uint40 joinedAt;
        uint40 leftAt; // 0 while a member
    }

    /// The first word is all that settlement reads per claim.
    struct Gateway {
        address member;
        uint8 roles;
        uint40 activeFrom;
        uint40 activeTo;
        bytes32 meterPoint;
    }

    mapping(address => Member) public members;
    mapping(bytes32 => address) public meterPointMember;
    mapping(address => Gateway) internal _gateways;
    mapping(address => address[]) internal _memberGateways;

    event MemberRegistered(address indexed account, uint40 joinedAt);
    event MemberRemoved(address indexed account, uint40 leftAt);
    event MeterPointRegistered(bytes32 indexed meterPoint, address indexed member);
    event GatewayRegistered(
        address indexed gateway, address indexed member, bytes32 indexed meterPoint, uint8 roles, uint40 activeFrom
    );
    event GatewayRevoked(address indexed gateway, uint40 activeTo);

    error ZeroAddress();
    error NotAMember(address account);
    error AlreadyMember(address account);
    error MeterPointTaken(bytes32 meterPoint, address member);
    error MeterPointNotOwned(bytes32 meterPoint, address member);
    error GatewayAlreadyRegistered(address gateway);
    error UnknownGateway(address gateway);
    error GatewayAlreadyRevoked(address gateway, uint40 activeTo);
    error BadGatewayRoles(uint8 roles);
    error RevocationBeforeActivation(address gateway, uint40 activeFrom, uint40 at);

    function registerMember(address account) external onlyRole(REGISTRAR_ROLE) {
        if (account == address(0)) revert ZeroAddress();
        if (members[account].joinedAt != 0) revert AlreadyMember(account);
        members[account] = Member(uint40(block.timestamp), 0);
        emit MemberRegistered(account, uint40(block.timestamp));
    }

    function removeMember(address account) external onlyRole(REGISTRAR_ROLE) {
        if (!isMember(account)) revert NotAMember(account);
        members[account].leftAt = uint40(block.timestamp);
        emit MemberRemoved(account, uint40(block.timestamp));
    }

    function isMember(address account) public view returns (bool) {
        Member storage m = members[account];
        return m.joinedAt != 0 && m.leftAt == 0;
    }

    function registerMeterPoint(bytes32 meterPoint, address member) external onlyRole(REGISTRAR_ROLE) {
        if (!isMember(member)) revert NotAMember(member);
        address owner = meterPointMember[meterPoint];
        if (owner != address(0)) revert MeterPointTaken(meterPoint, owner);
        meterPointMember[meterPoint] = member;
        emit MeterPointRegistered(meterPoint, member);
    }

    /// `activeFrom` 0 means now. It may lie in the past: a gateway installed before the
    /// community registered it signs claims for periods since its installation.
    function registerGateway(address gateway, address member, bytes32 meterPoint, uint8 roles, uint40 activeFrom)
        external
        onlyRole(REGISTRAR_ROLE)
    {
        if (gateway == address(0)) revert ZeroAddress();
        if (!isMember(member)) revert NotAMember(member);
        if (meterPointMember[meterPoint] != member) revert MeterPointNotOwned(meterPoint, member);
        if (roles == 0 || roles & ~(ROLE_GRID | ROLE_PRODUCTION) != 0) revert BadGatewayRoles(roles);
        if (_gateways[gateway].member != address(0)) revert GatewayAlreadyRegistered(gateway);
        uint40 from = activeFrom == 0 ? uint40(block.timestamp) : activeFrom;
        _gateways[gateway] = Gateway(member, roles, from, 0, meterPoint);
        _memberGateways[member].push(gateway);
        emit GatewayRegistered(gateway, member, meterPoint, roles, from);
    }

    /// `at` 0 means now; an earlier `at` withdraws trust retroactively.
    function revokeGateway(address gateway, uint40 at) external onlyRole(REGISTRAR_ROLE) {
        Gateway storage g = _gateways[gateway];
        if (g.member == address(0)) revert UnknownGateway(gateway);
        if (g.activeTo != 0) revert GatewayAlreadyRevoked(gateway, g.activeTo);
        uint40 to = at == 0 ? uint40(block.timestamp) : at;
        if (to < g.activeFrom) revert RevocationBeforeActivation(gateway, g.activeFrom, to);
        g.activeTo = to;
        emit GatewayRevoked(gateway, to);
    }

    function gatewayInfo(address gw) external view returns (Gateway memory) {
        return _gateways[gw];
    }

    /// Whom a gateway belonged to at `ts`, and whether it was trusted then: what a
    /// certificate verifier asks about the gateway that signed a reading or a claim.
    function gatewayAt(address gw, uint64 ts)
        external
        view
        returns (address member, bytes32 meterPoint, uint8 roles, bool active)
    {
        Gateway storage g = _gateways[gw];
        active = g.member != address(0) && g.activeFrom <= ts && (g.activeTo == 0 || ts < g.activeTo);
        return (g.member, g.meterPoint, g.roles, active);
    }

    function gatewaysOf(address member) external view returns (address[] memory) {
        return _memberGateways[member];
    }
}
