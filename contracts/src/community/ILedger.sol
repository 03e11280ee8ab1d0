// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

/// What the community's contracts use of `CommunityLedger`.
interface ILedger {
    function move(uint8 unit, address from, address to, uint256 amount) external;
    function replaceAccount(address from, address to) external;
    function isMember(address account) external view returns (bool);
    function members(address account) external view returns (uint40 joinedAt, uint40 leftAt);
    function frozen(address account) external view returns (bool);
    function unitCount() external view returns (uint8);
    function FUND() external view returns (address);
    function hasRole(bytes32 role, address account) external view returns (bool);
}
