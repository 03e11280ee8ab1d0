// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// The naive alternative that bench/gas.py measures against: one ERC-20 mint transaction
/// per member per interval.
contract NaiveToken is ERC20 {
    address private immutable _minter;

    error NotMinter();

    constructor() ERC20("Naive kWh", "NKWH") {
        _minter = msg.sender;
    }

    function mint(address to, uint256 amount) external {
        if (msg.sender != _minter) revert NotMinter();
        _mint(to, amount);
    }
}
