// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ILedger} from "./ILedger.sol";
import {MemberIntents} from "./MemberIntents.sol";
import {Succession} from "./Succession.sol";

/// Payment requests: a member (or the board, for the fund) asks a payer — or anyone, for a
/// link or a QR code — for an amount in a unit, with an encrypted memo and an expiry. The
/// payer pays all or part (several payments until the amount is reached) or refuses; the
/// requester may withdraw it. Every step is an event, so both sides see the history. When
/// recovery replaces a payer A by B, requests addressed to A are B's to pay or refuse.
contract PaymentRequests is AccessControl, MemberIntents, Succession {
    bytes32 public constant BOARD_ROLE = keccak256("BOARD_ROLE");
    bytes32 public constant REQUEST_TYPEHASH = keccak256(
        "Request(address requester,address payer,uint8 unit,uint256 amount,bytes32 memoHash,uint64 expiresAt,uint64 nonce,uint64 deadline)"
    );
    bytes32 public constant PAY_TYPEHASH =
        keccak256("PayRequest(address payer,uint256 request,uint256 amount,uint64 nonce,uint64 deadline)");
    bytes32 public constant REFUSE_TYPEHASH =
        keccak256("RefuseRequest(address payer,uint256 request,uint64 nonce,uint64 deadline)");
    bytes32 public constant WITHDRAW_TYPEHASH =
        keccak256("WithdrawRequest(address requester,uint256 request,uint64 nonce,uint64 deadline)");

    uint8 public constant OPEN = 1;
    uint8 public constant PAID = 2;
    uint8 public constant REFUSED = 3;
    uint8 public constant WITHDRAWN = 4;

    struct Request {
        address requester;
        uint8 unit;
        uint8 status;
        uint40 expiresAt;
        address payer; // address(0): anyone
        uint96 amount;
        uint96 paid;
    }

    ILedger public immutable LEDGER;
    uint256 public requestCount;
    mapping(uint256 => Request) public requests;

    event Requested(
        uint256 indexed request,
        address indexed requester,
        address indexed payer,
        uint8 unit,
        uint96 amount,
        uint40 expiresAt,
        bytes memo
    );
    event RequestPaid(uint256 indexed request, address indexed payer, uint256 amount, uint96 paidTotal);
    event RequestRefused(uint256 indexed request, address indexed payer);
    event RequestWithdrawn(uint256 indexed request, address indexed requester);

    error BadRequest(uint96 amount, uint40 expiresAt);
    error UnknownRequest(uint256 request);
    error RequestClosed(uint256 request, uint8 status);
    error RequestExpired(uint256 request, uint40 expiresAt);
    error NotThePayer(uint256 request, address payer);
    error NotTheRequester(uint256 request, address requester);
    error AboveRemaining(uint256 request, uint256 remaining, uint256 amount);

    constructor(ILedger ledger, address admin) EIP712("Quartier Requests", "1") {
        LEDGER = ledger;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(BOARD_ROLE, admin);
    }

    function request(
        address requester,
        address payer,
        uint8 unit,
        uint96 amount,
        bytes calldata memo,
        uint40 expiresAt,
        uint64 nonce,
        uint64 deadline,
        bytes calldata sig
    ) external returns (uint256) {
        _useIntent(
            requester,
            keccak256(
                abi.encode(
                    REQUEST_TYPEHASH, requester, payer, unit, amount, _memoHash(memo), expiresAt, nonce, deadline
                )
            ),
            nonce,
            deadline,
            sig
        );
        return _create(requester, payer, unit, amount, memo, expiresAt);
    }

    /// The board asks a member to pay the fund (a contribution, a correction).
    function requestForFund(address payer, uint8 unit, uint96 amount, bytes calldata memo, uint40 expiresAt)
        external
        onlyRole(BOARD_ROLE)
        returns (uint256)
    {
        return _create(LEDGER.FUND(), payer, unit, amount, memo, expiresAt);
    }

    function pay(address payer, uint256 id, uint256 amount, uint64 nonce, uint64 deadline, bytes calldata sig)
        external
    {
        _useIntent(payer, keccak256(abi.encode(PAY_TYPEHASH, payer, id, amount, nonce, deadline)), nonce, deadline, sig);
        Request storage r = _open(id);
        if (r.payer != address(0) && _current(r.payer) != payer) revert NotThePayer(id, payer);
        uint256 remaining = uint256(r.amount) - r.paid;
        if (amount == 0 || amount > remaining) revert AboveRemaining(id, remaining, amount);
        r.paid += uint96(amount);
        if (r.paid == r.amount) r.status = PAID;
        LEDGER.move(r.unit, payer, r.requester, amount);
        emit RequestPaid(id, payer, amount, r.paid);
    }

    function refuse(address payer, uint256 id, uint64 nonce, uint64 deadline, bytes calldata sig) external {
        _useIntent(payer, keccak256(abi.encode(REFUSE_TYPEHASH, payer, id, nonce, deadline)), nonce, deadline, sig);
        Request storage r = _open(id);
        if (r.payer == address(0) || _current(r.payer) != payer) revert NotThePayer(id, payer);
        r.status = REFUSED;
        emit RequestRefused(id, payer);
    }

    function withdraw(address requester, uint256 id, uint64 nonce, uint64 deadline, bytes calldata sig) external {
        _useIntent(
            requester, keccak256(abi.encode(WITHDRAW_TYPEHASH, requester, id, nonce, deadline)), nonce, deadline, sig
        );
        Request storage r = _open(id);
        if (r.requester != requester) revert NotTheRequester(id, requester);
        r.status = WITHDRAWN;
        emit RequestWithdrawn(id, requester);
    }

    /// Who may pay request `id` now (address(0): anyone), after any replacement of its payer.
    function payerOf(uint256 id) external view returns (address) {
        address p = requests[id].payer;
        return p == address(0) ? p : _current(p);
    }

    function _successionLedger() internal view override returns (ILedger) {
        return LEDGER;
    }

    function _create(address requester, address payer, uint8 unit, uint96 amount, bytes calldata memo, uint40 expiresAt)
        private
        returns (uint256 id)
    {
        if (amount == 0 || expiresAt <= block.timestamp) revert BadRequest(amount, expiresAt);
        id = ++requestCount;
        requests[id] = Request(requester, unit, OPEN, expiresAt, payer, amount, 0);
        emit Requested(id, requester, payer, unit, amount, expiresAt, memo);
    }

    function _open(uint256 id) private view returns (Request storage r) {
        r = requests[id];
        if (r.status == 0) revert UnknownRequest(id);
        if (r.status != OPEN) revert RequestClosed(id, r.status);
        if (block.timestamp >= r.expiresAt) revert RequestExpired(id, r.expiresAt);
    }

    function _memoHash(bytes calldata memo) private pure returns (bytes32) {
        return memo.length == 0 ? bytes32(0) : keccak256(memo);
    }
}
