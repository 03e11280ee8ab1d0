// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

import {ILedger} from "./ILedger.sol";

/// What a contract beside the ledger does when account recovery replaces A by B: it
/// records the succession in O(1) (anyone may address requests or grants to A, so moving
/// them one by one could be made too costly to execute and would block the recovery), and
/// resolves it where the right is used: what was A's now answers to B, and A is nobody.
/// Only a holder of the ledger's `RECOVERY_ROLE` records a succession.
abstract contract Succession {
    bytes32 private constant _RECOVERY_ROLE = keccak256("RECOVERY_ROLE");

    mapping(address => address) public replacedBy;
    mapping(address => address) public replaces;

    event AccountSucceeded(address indexed from, address indexed to);

    error NotRecovery(address caller);

    function _successionLedger() internal view virtual returns (ILedger);

    function migrate(address from, address to) external {
        if (!_successionLedger().hasRole(_RECOVERY_ROLE, msg.sender)) revert NotRecovery(msg.sender);
        replacedBy[from] = to;
        replaces[to] = from;
        emit AccountSucceeded(from, to);
    }

    /// The key that now holds `account`: itself, or its successor (after several
    /// replacements, the last).
    function _current(address account) internal view returns (address) {
        while (replacedBy[account] != address(0)) account = replacedBy[account];
        return account;
    }
}
