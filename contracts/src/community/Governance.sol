// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ILedger} from "./ILedger.sol";
import {MemberIntents} from "./MemberIntents.sol";

/// Members' proposals and votes, and their preferences for how the community fund is spent.
///
/// A proposal is one call to a community contract (the ledger's `setUnit` or `setLimits`
/// for floors, ceilings and demurrage, the exchange's `setRate`, the conversion caps, or
/// this contract's own rules), which this contract makes once the proposal has passed and
/// the execution delay has run: it holds the governor role on those contracts. One member,
/// one vote: a member may vote if they were a member when the proposal was made, so adding
/// members cannot swing a running vote. A proposal passes with at least `quorum` votes
/// cast and more than `majorityBps` of them in favour. Proposing and voting are member
/// intents, relayed.
///
/// Fund allocation: each member keeps a preference vector over the destinations (basis
/// points summing to 10,000), revisable at any time. The allocation is the average of the
/// vectors weighted by each member's contribution, which lives in the ledger's events
/// (credited kWh, hours provided): it is computed off chain from events, and only the
/// preferences are kept here.
contract Governance is AccessControl, MemberIntents {
    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    bytes32 public constant RECOVERY_ROLE = keccak256("RECOVERY_ROLE");
    bytes32 public constant PROPOSE_TYPEHASH = keccak256(
        "Propose(address proposer,address target,bytes32 dataHash,bytes32 descriptionHash,uint64 nonce,uint64 deadline)"
    );
    bytes32 public constant VOTE_TYPEHASH =
        keccak256("Vote(address voter,uint256 proposal,bool support,uint64 nonce,uint64 deadline)");
    bytes32 public constant PREFERENCES_TYPEHASH =
        keccak256("Preferences(address member,uint256 packed,uint64 nonce,uint64 deadline)");
    uint8 public constant MAX_DESTINATIONS = 16;
    uint16 public constant TOTAL_BPS = 10_000;

    struct Proposal {
        address proposer;
        address target;
        uint40 createdAt;
        uint40 voteEnd;
        uint32 yes;
        uint32 no;
        bool executed;
        bytes32 dataHash;
    }

    ILedger public immutable LEDGER;
    uint32 public votingPeriod = 7 days;
    uint32 public executionDelay = 2 days;
    uint32 public quorum = 3;
    uint16 public majorityBps = 5_000;

    uint256 public proposalCount;
    mapping(uint256 => Proposal) public proposals;
    mapping(uint256 => mapping(address => bool)) public hasVoted;
    mapping(address => bool) public isTarget;

    uint8 public destinationCount;
    mapping(uint8 => string) public destinationName;
    /// member => 16 basis-point shares, destination i in bits 16i..16i+15.
    mapping(address => uint256) public preferences;

    event RulesSet(uint32 votingPeriod, uint32 executionDelay, uint32 quorum, uint16 majorityBps);
    event TargetSet(address indexed target, bool allowed);
    event Proposed(
        uint256 indexed proposal, address indexed proposer, address indexed target, bytes data, string description, uint40 voteEnd
    );
    event Voted(uint256 indexed proposal, address indexed voter, bool support);
    event Executed(uint256 indexed proposal, address indexed by);
    event DestinationAdded(uint8 indexed destination, string name);
    event PreferencesSet(address indexed member, uint256 packed);
    event PreferencesMoved(address indexed from, address indexed to);

    error NotAMember(address account);
    error NotATarget(address target);
    error UnknownProposal(uint256 proposal);
    error VotingClosed(uint256 proposal, uint40 voteEnd);
    error VotingOpen(uint256 proposal, uint40 voteEnd);
    error NotEligible(address voter, uint256 proposal);
    error AlreadyVoted(address voter, uint256 proposal);
    error NotPassed(uint256 proposal, uint32 yes, uint32 no, uint32 quorum, uint16 majorityBps);
    error TooEarly(uint256 proposal, uint256 executableAt);
    error AlreadyExecuted(uint256 proposal);
    error WrongCalldata(uint256 proposal);
    error BadRules();
    error TooManyDestinations();
    error BadPreferences(uint256 sum);
    error UnknownDestination(uint8 destination);
    error ExecutionFailed(uint256 proposal, bytes reason);

    constructor(ILedger ledger, address admin) EIP712("Quartier Governance", "1") {
        LEDGER = ledger;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GOVERNOR_ROLE, admin);
        // Passed proposals change this contract's own rules too.
        _grantRole(GOVERNOR_ROLE, address(this));
        isTarget[address(this)] = true;
        emit TargetSet(address(this), true);
    }

    // ---- rules (governance itself) ----

    function setRules(uint32 votingPeriod_, uint32 executionDelay_, uint32 quorum_, uint16 majorityBps_)
        external
        onlyRole(GOVERNOR_ROLE)
    {
        if (votingPeriod_ == 0 || quorum_ == 0 || majorityBps_ >= TOTAL_BPS) revert BadRules();
        (votingPeriod, executionDelay, quorum, majorityBps) = (votingPeriod_, executionDelay_, quorum_, majorityBps_);
        emit RulesSet(votingPeriod_, executionDelay_, quorum_, majorityBps_);
    }

    /// The contracts a proposal may call.
    function setTarget(address target, bool allowed) external onlyRole(GOVERNOR_ROLE) {
        isTarget[target] = allowed;
        emit TargetSet(target, allowed);
    }

    function addDestination(string calldata name) external onlyRole(GOVERNOR_ROLE) returns (uint8 d) {
        d = destinationCount;
        if (d >= MAX_DESTINATIONS) revert TooManyDestinations();
        destinationName[d] = name;
        destinationCount = d + 1;
        emit DestinationAdded(d, name);
    }

    // ---- proposals and votes (member intents) ----

    function propose(
        address proposer,
        address target,
        bytes calldata data,
        string calldata description,
        uint64 nonce,
        uint64 deadline,
        bytes calldata sig
    ) external returns (uint256 id) {
        bytes32 dataHash = keccak256(data);
        _useIntent(
            proposer,
            keccak256(
                abi.encode(PROPOSE_TYPEHASH, proposer, target, dataHash, keccak256(bytes(description)), nonce, deadline)
            ),
            nonce,
            deadline,
            sig
        );
        if (!LEDGER.isMember(proposer)) revert NotAMember(proposer);
        if (!isTarget[target]) revert NotATarget(target);
        id = ++proposalCount;
        uint40 voteEnd = uint40(block.timestamp + votingPeriod);
        proposals[id] = Proposal(proposer, target, uint40(block.timestamp), voteEnd, 0, 0, false, dataHash);
        emit Proposed(id, proposer, target, data, description, voteEnd);
    }

    function vote(address voter, uint256 id, bool support, uint64 nonce, uint64 deadline, bytes calldata sig)
        external
    {
        _useIntent(voter, keccak256(abi.encode(VOTE_TYPEHASH, voter, id, support, nonce, deadline)), nonce, deadline, sig);
        Proposal storage p = _proposal(id);
        if (block.timestamp > p.voteEnd) revert VotingClosed(id, p.voteEnd);
        (uint40 joinedAt,) = LEDGER.members(voter);
        if (!LEDGER.isMember(voter) || joinedAt > p.createdAt) revert NotEligible(voter, id);
        if (hasVoted[id][voter]) revert AlreadyVoted(voter, id);
        hasVoted[id][voter] = true;
        if (support) ++p.yes;
        else ++p.no;
        emit Voted(id, voter, support);
    }

    function passed(uint256 id) public view returns (bool) {
        Proposal storage p = _proposal(id);
        uint256 cast = uint256(p.yes) + p.no;
        return cast >= quorum && uint256(p.yes) * TOTAL_BPS > uint256(majorityBps) * cast;
    }

    /// Anyone may execute a passed proposal once voting has closed and the delay has run.
    function execute(uint256 id, bytes calldata data) external {
        Proposal storage p = _proposal(id);
        if (p.executed) revert AlreadyExecuted(id);
        if (block.timestamp <= p.voteEnd) revert VotingOpen(id, p.voteEnd);
        if (block.timestamp < uint256(p.voteEnd) + executionDelay) {
            revert TooEarly(id, uint256(p.voteEnd) + executionDelay);
        }
        if (!passed(id)) revert NotPassed(id, p.yes, p.no, quorum, majorityBps);
        if (keccak256(data) != p.dataHash) revert WrongCalldata(id);
        p.executed = true;
        (bool ok, bytes memory reason) = p.target.call(data);
        if (!ok) revert ExecutionFailed(id, reason);
        emit Executed(id, msg.sender);
    }

    // ---- fund preferences ----

    /// `packed` holds 16 basis-point shares (destination i in bits 16i..16i+15) summing to
    /// 10,000, over existing destinations only.
    function setPreferences(address member, uint256 packed, uint64 nonce, uint64 deadline, bytes calldata sig) external {
        _useIntent(
            member, keccak256(abi.encode(PREFERENCES_TYPEHASH, member, packed, nonce, deadline)), nonce, deadline, sig
        );
        if (!LEDGER.isMember(member)) revert NotAMember(member);
        uint256 sum;
        for (uint8 i = 0; i < MAX_DESTINATIONS; ++i) {
            uint256 share = uint16(packed >> (16 * i));
            if (share != 0 && i >= destinationCount) revert UnknownDestination(i);
            sum += share;
        }
        if (sum != TOTAL_BPS) revert BadPreferences(sum);
        preferences[member] = packed;
        emit PreferencesSet(member, packed);
    }

    /// Account replacement carries the preferences to the new address.
    function movePreferences(address from, address to) external onlyRole(RECOVERY_ROLE) {
        uint256 packed = preferences[from];
        delete preferences[from];
        preferences[to] = packed;
        emit PreferencesMoved(from, to);
        emit PreferencesSet(to, packed);
    }

    function _proposal(uint256 id) internal view returns (Proposal storage p) {
        p = proposals[id];
        if (p.createdAt == 0) revert UnknownProposal(id);
    }
}
