// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ILedger} from "./ILedger.sol";
import {MemberIntents} from "./MemberIntents.sol";

interface IPreferences {
    function movePreferences(address from, address to) external;
}

/// A contract that follows replacements (see `Succession`): helpers, payment requests.
interface IMigrates {
    function migrate(address from, address to) external;
}

/// Account replacement after a lost phone or key: address A is replaced by B.
///
/// A request opens in one of three ways: the board asks (after an identity check), A asks
/// (a signed intent: A still has the key and moves to a new phone), or enough of A's
/// guardians approve (m of n members A named beforehand, each by a signed intent). Then a
/// delay runs (48 h by default, set by governance) during which A can cancel with a signed
/// intent — a thief with a stolen identity check is stopped by the real owner — and the
/// board can cancel too. After the delay anyone executes it: the ledger moves A's
/// balances, limits, membership and gateways (with their meter points) to B and freezes
/// A; governance moves A's fund preferences; A's guardians now guard B; each contract added
/// with `addMigration` (helpers, payment requests) hands what was addressed to A to B.
contract AccountRecovery is AccessControl, MemberIntents {
    bytes32 public constant BOARD_ROLE = keccak256("BOARD_ROLE");
    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    bytes32 public constant REQUEST_TYPEHASH =
        keccak256("Replace(address from,address to,uint64 nonce,uint64 deadline)");
    bytes32 public constant CANCEL_TYPEHASH = keccak256("CancelReplace(address from,uint64 nonce,uint64 deadline)");
    bytes32 public constant APPROVE_TYPEHASH =
        keccak256("ApproveReplace(address guardian,address from,address to,uint64 nonce,uint64 deadline)");
    bytes32 public constant GUARDIANS_TYPEHASH =
        keccak256("Guardians(address member,address[] guardians,uint8 threshold,uint64 nonce,uint64 deadline)");
    uint8 public constant MAX_GUARDIANS = 8;
    uint8 public constant MAX_MIGRATIONS = 8; // bounds what `execute` calls

    struct Request {
        address to;
        uint40 readyAt;
    }

    ILedger public immutable LEDGER;
    IPreferences public immutable PREFERENCES;
    uint32 public delay = 48 hours;
    mapping(address => Request) public requests;
    mapping(address => address[]) internal _guardians;
    mapping(address => uint8) public threshold;
    /// A fresh round per request opened or closed, so approvals never outlive their round.
    mapping(address => uint256) public round;
    /// keccak256(from, round, to) => bitmap of the guardians (by index) who approved.
    mapping(bytes32 => uint256) public approvals;
    IMigrates[] public migrations;

    event DelaySet(uint32 delay);
    event MigrationAdded(address indexed target);
    event GuardiansSet(address indexed member, address[] guardians, uint8 threshold);
    event ReplacementApproved(address indexed from, address indexed to, address indexed guardian);
    event ReplacementRequested(address indexed from, address indexed to, address indexed by, uint40 readyAt);
    event ReplacementCancelled(address indexed from, address indexed to, address indexed by);
    event ReplacementExecuted(address indexed from, address indexed to, address indexed by);

    error NotAMember(address account);
    error SameAccount(address account);
    error RequestPending(address from, address to);
    error NoRequest(address from);
    error NotReady(address from, uint40 readyAt);
    error NotAGuardian(address from, address guardian);
    error AlreadyApproved(address from, address guardian);
    error BadGuardians(uint256 count, uint8 threshold);
    error TooManyMigrations(uint256 count);

    constructor(ILedger ledger, address admin, IPreferences preferences) EIP712("Quartier Recovery", "1") {
        LEDGER = ledger;
        PREFERENCES = preferences;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(BOARD_ROLE, admin);
        _grantRole(GOVERNOR_ROLE, admin);
    }

    function setDelay(uint32 delay_) external onlyRole(GOVERNOR_ROLE) {
        delay = delay_;
        emit DelaySet(delay_);
    }

    /// `target` follows every replacement executed from now on; it checks that this
    /// contract holds the ledger's `RECOVERY_ROLE`.
    function addMigration(IMigrates target) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (migrations.length >= MAX_MIGRATIONS) revert TooManyMigrations(migrations.length);
        migrations.push(target);
        emit MigrationAdded(address(target));
    }

    function migrationCount() external view returns (uint256) {
        return migrations.length;
    }

    /// The member names up to 8 guardians (members, usually) of whom `threshold` may
    /// approve a replacement instead of the board. No guardians: `threshold` 0.
    function setGuardians(
        address member,
        address[] calldata guardians,
        uint8 threshold_,
        uint64 nonce,
        uint64 deadline,
        bytes calldata sig
    ) external {
        _useIntent(
            member,
            keccak256(
                abi.encode(GUARDIANS_TYPEHASH, member, keccak256(abi.encodePacked(guardians)), threshold_, nonce, deadline)
            ),
            nonce,
            deadline,
            sig
        );
        if (guardians.length > MAX_GUARDIANS || threshold_ > guardians.length || (threshold_ == 0) != (guardians.length == 0)) {
            revert BadGuardians(guardians.length, threshold_);
        }
        for (uint256 i = 0; i < guardians.length; ++i) {
            if (guardians[i] == member) revert BadGuardians(guardians.length, threshold_);
        }
        _guardians[member] = guardians;
        threshold[member] = threshold_;
        ++round[member]; // approvals under the old guardians no longer count
        emit GuardiansSet(member, guardians, threshold_);
    }

    function guardiansOf(address member) external view returns (address[] memory) {
        return _guardians[member];
    }

    // ---- opening a request ----

    function requestByBoard(address from, address to) external onlyRole(BOARD_ROLE) {
        _open(from, to, msg.sender);
    }

    function requestByMember(address from, address to, uint64 nonce, uint64 deadline, bytes calldata sig) external {
        _useIntent(from, keccak256(abi.encode(REQUEST_TYPEHASH, from, to, nonce, deadline)), nonce, deadline, sig);
        _open(from, to, from);
    }

    /// A guardian of `from` approves replacing it by `to`; the request opens at the
    /// threshold.
    function approve(address guardian, address from, address to, uint64 nonce, uint64 deadline, bytes calldata sig)
        external
    {
        _useIntent(
            guardian, keccak256(abi.encode(APPROVE_TYPEHASH, guardian, from, to, nonce, deadline)), nonce, deadline, sig
        );
        address[] storage gs = _guardians[from];
        uint256 index = type(uint256).max;
        for (uint256 i = 0; i < gs.length; ++i) {
            if (gs[i] == guardian) index = i;
        }
        if (index == type(uint256).max) revert NotAGuardian(from, guardian);
        bytes32 k = keccak256(abi.encode(from, round[from], to));
        uint256 bits = approvals[k];
        if (bits & (1 << index) != 0) revert AlreadyApproved(from, guardian);
        bits |= 1 << index;
        approvals[k] = bits;
        emit ReplacementApproved(from, to, guardian);
        uint256 count;
        for (; bits != 0; bits &= bits - 1) ++count;
        if (count >= threshold[from]) _open(from, to, guardian);
    }

    // ---- cancelling and executing ----

    function cancel(address from, uint64 nonce, uint64 deadline, bytes calldata sig) external {
        _useIntent(from, keccak256(abi.encode(CANCEL_TYPEHASH, from, nonce, deadline)), nonce, deadline, sig);
        _close(from, false, from);
    }

    function cancelByBoard(address from) external onlyRole(BOARD_ROLE) {
        _close(from, false, msg.sender);
    }

    /// Anyone may execute a request whose delay has run.
    function execute(address from) external {
        Request memory r = requests[from];
        if (r.to == address(0)) revert NoRequest(from);
        if (block.timestamp < r.readyAt) revert NotReady(from, r.readyAt);
        _close(from, true, msg.sender);
        LEDGER.replaceAccount(from, r.to);
        if (address(PREFERENCES) != address(0)) PREFERENCES.movePreferences(from, r.to);
        for (uint256 i = 0; i < migrations.length; ++i) {
            migrations[i].migrate(from, r.to);
        }
        _guardians[r.to] = _guardians[from];
        threshold[r.to] = threshold[from];
        delete _guardians[from];
        delete threshold[from];
    }

    function _open(address from, address to, address by) private {
        if (from == to || to == address(0)) revert SameAccount(from);
        if (!LEDGER.isMember(from)) revert NotAMember(from);
        Request storage r = requests[from];
        if (r.to != address(0)) revert RequestPending(from, r.to);
        uint40 readyAt = uint40(block.timestamp + delay);
        requests[from] = Request(to, readyAt);
        ++round[from];
        emit ReplacementRequested(from, to, by, readyAt);
    }

    function _close(address from, bool executed, address by) private {
        address to = requests[from].to;
        if (to == address(0)) revert NoRequest(from);
        delete requests[from];
        ++round[from];
        if (executed) emit ReplacementExecuted(from, to, by);
        else emit ReplacementCancelled(from, to, by);
    }
}
