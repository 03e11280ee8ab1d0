// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

import {Payments} from "./Payments.sol";
import {AccountWord} from "./Words.sol";

/// What the community's other contracts (exchange, conversion out, helpers, payment
/// requests, account replacement) may do to the ledger, each through a role they hold:
///
/// - `OPERATOR_ROLE`: `move` a balance between two accounts. Operators check the
///   member's consent themselves (a signed offer, a helper's grant, a redemption intent);
///   the ledger still applies every rule of a payment — pause, frozen accounts, floors and
///   ceilings with the amounts, demurrage — and emits the same `Transferred` event.
/// - `RECOVERY_ROLE`: `replaceAccount(a, b)` moves everything the ledger holds for `a`
///   (one word and the custom limits per unit, membership, gateways and their meter
///   points) to a fresh address `b`, and freezes `a`.
///
/// Neither path is on the payment or settlement hot paths, which stay as they are.
abstract contract Operators is Payments {
    using AccountWord for uint256;

    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    bytes32 public constant RECOVERY_ROLE = keccak256("RECOVERY_ROLE");

    event AccountReplaced(address indexed from, address indexed to, address indexed by);

    error AccountInUse(address account);
    error NotMovable(address from, address to, uint256 amount);

    /// Moves `amount` of `unit` from `from` to `to` for an operator contract that holds the
    /// member's consent. Same checks and event as a payment, without the nonce.
    function move(uint8 unit, address from, address to, uint256 amount) external onlyRole(OPERATOR_ROLE) {
        if (amount == 0 || amount >= 2 ** 95 || from == to) revert NotMovable(from, to, amount);
        uint256 uw = _activeUnit(unit);
        uint256 c1;
        uint256 c2;
        (uw, c1) = _move(unit, uw, from, -int256(amount));
        (uw, c2) = _move(unit, uw, to, int256(amount));
        _units[unit] = uw;
        emit Transferred(from, to, (uint256(unit) << 248) | amount, c1 | (c2 << 128));
    }

    /// Replaces account `from` by the fresh address `to`: every unit's word (balance, last
    /// touch, demurrage remainder, nonce, owed demurrage) and custom limits, the
    /// membership, the gateways and their meter points. `from` is left frozen with nothing.
    /// The sums per unit do not change, so every unit stays at zero.
    function replaceAccount(address from, address to) external onlyRole(RECOVERY_ROLE) {
        if (to == address(0)) revert ZeroAddress();
        if (!isMember(from)) revert NotAMember(from);
        if (members[to].joinedAt != 0 || frozen[to] || _memberGateways[to].length != 0) revert AccountInUse(to);
        uint8 n = unitCount;
        for (uint8 u = 0; u < n; ++u) {
            if (_accounts[u][to] != 0) revert AccountInUse(to);
            uint256 w = _accounts[u][from];
            _accounts[u][to] = w;
            _accounts[u][from] = uint256(AccountWord.FROZEN) << 248;
            if (w.flags() & AccountWord.CUSTOM_LIMITS != 0) {
                _limits[u][to] = _limits[u][from];
                delete _limits[u][from];
            }
        }
        members[to] = Member(uint40(block.timestamp), 0);
        members[from].leftAt = uint40(block.timestamp);
        address[] storage gws = _memberGateways[from];
        for (uint256 i = 0; i < gws.length; ++i) {
            Gateway storage g = _gateways[gws[i]];
            g.member = to;
            if (meterPointMember[g.meterPoint] == from) meterPointMember[g.meterPoint] = to;
            _memberGateways[to].push(gws[i]);
        }
        delete _memberGateways[from];
        frozen[from] = true;
        emit AccountReplaced(from, to, msg.sender);
        emit MemberRegistered(to, uint40(block.timestamp));
        emit MemberRemoved(from, uint40(block.timestamp));
        emit Frozen(from, msg.sender, "account replaced");
    }
}
