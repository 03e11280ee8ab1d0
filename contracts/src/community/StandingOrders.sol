// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ILedger} from "./ILedger.sol";
import {MemberIntents} from "./MemberIntents.sol";
import {Succession} from "./Succession.sol";

/// Standing donation orders: a member gives a neighbour, every settlement period, either a
/// fixed number of Wh or a share (in 1/100 %) of the export its gateways claimed. The
/// donor sets and cancels an order with a signed intent (relayed, no gas) or by sending
/// the transaction itself. Settlement executes the orders: the ledger's `settle` asks
/// `check` about each donation in its batch, so no one but the donor decides what it
/// gives, and the settler can only give less than an order allows (the donor's export
/// may not cover it all, nor the beneficiary's consumption need it).
///
/// A donor's share orders together never exceed 100 %. An order counts for every period
/// settled while it is active: from the transaction that sets it until the one that
/// cancels it. When account recovery replaces a key, its orders (given and received)
/// answer to the new key.
contract StandingOrders is AccessControl, MemberIntents, Succession {
    bytes32 public constant SET_TYPEHASH = keccak256(
        "StandingOrder(address donor,address beneficiary,uint64 wh,uint16 shareBp,uint64 nonce,uint64 deadline)"
    );
    bytes32 public constant CANCEL_TYPEHASH =
        keccak256("CancelStandingOrder(address donor,uint64 order,uint64 nonce,uint64 deadline)");
    uint16 public constant BASIS_POINTS = 10_000;

    struct Order {
        address donor;
        uint16 shareBp; // 0 for a fixed order
        bool active;
        address beneficiary;
        uint64 wh; // per period; 0 for a share order
    }

    ILedger public immutable LEDGER;
    /// Order ids start at 1.
    mapping(uint64 => Order) internal _orders;
    uint64 public orderCount;
    /// The sum of the active share orders set by a key, in basis points (a member's total
    /// adds those of the keys it replaced: `sharedBpOf`).
    mapping(address => uint256) public sharedBp;

    event OrderSet(
        uint64 indexed order, address indexed donor, address indexed beneficiary, uint64 wh, uint16 shareBp
    );
    event OrderCancelled(uint64 indexed order, address indexed donor);

    error BadOrder(uint64 wh, uint16 shareBp);
    error SelfDonation(address account);
    error NotAMember(address account);
    error SharesAbove100(address donor, uint256 totalBp);
    error UnknownOrder(uint64 order);
    error OrderNotActive(uint64 order);
    error DonationAboveOrder(uint64 order, uint256 wh, uint256 allowed);
    error ZeroDonation(uint64 order);

    constructor(ILedger ledger, address admin) EIP712("Quartier Standing Orders", "1") {
        LEDGER = ledger;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// Sets an order for `donor`: on its signed `StandingOrder` intent, or, with an empty
    /// `sig`, when the donor sends the transaction itself. Exactly one of `wh` and
    /// `shareBp` is non-zero.
    function set(
        address donor,
        address beneficiary,
        uint64 wh,
        uint16 shareBp,
        uint64 nonce,
        uint64 deadline,
        bytes calldata sig
    ) external returns (uint64 id) {
        if ((wh == 0) == (shareBp == 0) || shareBp > BASIS_POINTS) revert BadOrder(wh, shareBp);
        if (donor == beneficiary) revert SelfDonation(donor);
        if (!LEDGER.isMember(donor)) revert NotAMember(donor);
        if (!LEDGER.isMember(beneficiary)) revert NotAMember(beneficiary);
        _consent(
            donor, keccak256(abi.encode(SET_TYPEHASH, donor, beneficiary, wh, shareBp, nonce, deadline)), nonce, deadline, sig
        );
        if (shareBp != 0) {
            uint256 total = sharedBpOf(donor) + shareBp;
            if (total > BASIS_POINTS) revert SharesAbove100(donor, total);
            sharedBp[donor] += shareBp;
        }
        id = ++orderCount;
        _orders[id] = Order(donor, shareBp, true, beneficiary, wh);
        emit OrderSet(id, donor, beneficiary, wh, shareBp);
    }

    /// Cancels an order of `donor`, on its signed `CancelStandingOrder` intent or its own
    /// transaction (empty `sig`).
    function cancel(address donor, uint64 id, uint64 nonce, uint64 deadline, bytes calldata sig) external {
        Order storage o = _orders[id];
        if (o.donor == address(0) || _current(o.donor) != donor) revert UnknownOrder(id);
        if (!o.active) revert OrderNotActive(id);
        _consent(donor, keccak256(abi.encode(CANCEL_TYPEHASH, donor, id, nonce, deadline)), nonce, deadline, sig);
        o.active = false;
        if (o.shareBp != 0) sharedBp[o.donor] -= o.shareBp;
        emit OrderCancelled(id, donor);
    }

    /// The order, its donor and beneficiary as the keys that hold them now.
    function orderOf(uint64 id) external view returns (Order memory o) {
        o = _orders[id];
        if (o.donor != address(0)) {
            o.donor = _current(o.donor);
            o.beneficiary = _current(o.beneficiary);
        }
    }

    /// The share of its export `account` gives in active orders, in basis points.
    function sharedBpOf(address account) public view returns (uint256 total) {
        for (address a = account; a != address(0); a = replaces[a]) {
            total += sharedBp[a];
        }
    }

    /// See `IStandingOrders.check` in the ledger's Settlement.
    function check(uint64 id, uint256 wh, uint256 donorExportWh) external view returns (address, address) {
        Order storage o = _orders[id];
        if (o.donor == address(0)) revert UnknownOrder(id);
        if (!o.active) revert OrderNotActive(id);
        if (wh == 0) revert ZeroDonation(id);
        uint256 allowed = o.shareBp != 0 ? donorExportWh * o.shareBp / BASIS_POINTS : o.wh;
        if (wh > allowed) revert DonationAboveOrder(id, wh, allowed);
        return (_current(o.donor), _current(o.beneficiary));
    }

    function _successionLedger() internal view override returns (ILedger) {
        return LEDGER;
    }

    function _consent(address donor, bytes32 structHash, uint64 nonce, uint64 deadline, bytes calldata sig) private {
        if (sig.length == 0) {
            if (msg.sender != donor) revert BadIntentSignature(donor, msg.sender);
        } else {
            _useIntent(donor, structHash, nonce, deadline, sig);
        }
    }
}
