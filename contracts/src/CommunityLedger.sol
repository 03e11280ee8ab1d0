// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Balances} from "./Balances.sol";
import {Operators} from "./Operators.sol";
import {Settlement} from "./Settlement.sol";

/// A community's ledger: registry, balances, settlement batches and member payments in
/// one contract, so that settling a member or paying one never crosses a contract call.
/// The parts are separate files, each one idea; the deployer gets every role and hands
/// them out (registrar and settler to the community server, board to the board, governor
/// to the governance process).
contract CommunityLedger is Settlement, Operators {
    constructor(bytes32 community, address admin, address fund)
        Balances(fund)
        Settlement(community)
        EIP712("Quartier Ledger", "1")
    {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(REGISTRAR_ROLE, admin);
        _grantRole(SETTLER_ROLE, admin);
        _grantRole(BOARD_ROLE, admin);
        _grantRole(GOVERNOR_ROLE, admin);
    }
}
