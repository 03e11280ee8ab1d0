// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

import {Registry} from "./Registry.sol";
import {AccountWord, UnitWord, Demurrage} from "./Words.sol";

/// Mutual-credit units with signed balances that sum to zero per unit: every change moves
/// value between accounts, demurrage moves it from positive balances to the fund. Each
/// account is bounded by a floor (how far into debt) and a ceiling (how much may pile up),
/// per unit by default or per account. The board can pause every movement and freeze an
/// account, each with a reason that stays on chain.
///
/// Invariant, per unit: sum of stored balances + sum of owed demurrage + pending == 0.
abstract contract Balances is Registry {
    using AccountWord for uint256;

    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    bytes32 public constant BOARD_ROLE = keccak256("BOARD_ROLE");
    uint8 public constant MAX_UNITS = 16;

    /// The community fund: collects demurrage, pays certified exports to the grid.
    address public immutable FUND;

    uint8 public unitCount;
    bool public paused;
    mapping(uint8 => uint256) internal _units;
    mapping(uint8 => string) public unitSymbol;
    mapping(uint8 => uint8) public unitDecimals;
    mapping(uint8 => mapping(address => uint256)) internal _accounts;
    /// int128 floor | int128 ceiling << 128, read only for accounts flagged CUSTOM_LIMITS.
    mapping(uint8 => mapping(address => uint256)) internal _limits;
    mapping(address => bool) public frozen;

    event UnitAdded(
        uint8 indexed unit, string symbol, uint8 decimals, int64 floor, uint64 ceiling, uint32 ratePpbPerDay, bool metered
    );
    event UnitChanged(uint8 indexed unit, int64 floor, uint64 ceiling, uint32 ratePpbPerDay);
    event LimitsSet(uint8 indexed unit, address indexed account, int128 floor, int128 ceiling);
    event LimitsCleared(uint8 indexed unit, address indexed account);
    event Collected(uint8 indexed unit, uint256 amount);
    event Paused(address indexed by, string reason);
    event Resumed(address indexed by, string reason);
    event Frozen(address indexed account, address indexed by, string reason);
    event Unfrozen(address indexed account, address indexed by, string reason);

    error UnknownUnit(uint8 unit);
    error TooManyUnits();
    error MeteredUnitExists(uint8 unit);
    error LedgerPaused();
    error NotPaused();
    error AccountFrozen(address account);
    error NotFrozen(address account);
    error BelowFloor(uint8 unit, address account, int256 floor, int256 balanceAfter);
    error AboveCeiling(uint8 unit, address account, int256 ceiling, int256 balanceAfter);
    error BadLimits(int256 floor, int256 ceiling);

    constructor(address fund) {
        if (fund == address(0)) revert ZeroAddress();
        FUND = fund;
    }

    // ---- units and limits (governance) ----

    function addUnit(
        string calldata symbol,
        uint8 decimals,
        int64 floor,
        uint64 ceiling,
        uint32 ratePpbPerDay,
        bool metered
    ) external onlyRole(GOVERNOR_ROLE) returns (uint8 unit) {
        unit = unitCount;
        if (unit >= MAX_UNITS) revert TooManyUnits();
        if (floor > 0 || ceiling == 0) revert BadLimits(floor, int256(uint256(ceiling)));
        uint8 flags = UnitWord.EXISTS | (paused ? UnitWord.PAUSED : 0);
        if (metered) {
            for (uint8 u = 0; u < unit; ++u) {
                if (UnitWord.flags(_units[u]) & UnitWord.METERED != 0) revert MeteredUnitExists(u);
            }
            flags |= UnitWord.METERED;
        }
        _units[unit] = UnitWord.pack(0, ratePpbPerDay, floor, ceiling, flags);
        unitSymbol[unit] = symbol;
        unitDecimals[unit] = decimals;
        unitCount = unit + 1;
        emit UnitAdded(unit, symbol, decimals, floor, ceiling, ratePpbPerDay, metered);
    }

    /// A new rate applies to the time since each account's last touch, as lazily computed
    /// demurrage must; communities change rates rarely and announce them.
    function setUnit(uint8 unit, int64 floor, uint64 ceiling, uint32 ratePpbPerDay) external onlyRole(GOVERNOR_ROLE) {
        uint256 w = _unitWord(unit);
        if (floor > 0 || ceiling == 0) revert BadLimits(floor, int256(uint256(ceiling)));
        _units[unit] = UnitWord.pack(UnitWord.pending(w), ratePpbPerDay, floor, ceiling, UnitWord.flags(w));
        emit UnitChanged(unit, floor, ceiling, ratePpbPerDay);
    }

    function setLimits(uint8 unit, address account, int128 floor, int128 ceiling) external onlyRole(GOVERNOR_ROLE) {
        _unitWord(unit);
        if (floor > 0 || ceiling < 0 || floor < type(int96).min || ceiling > type(int96).max) {
            revert BadLimits(floor, ceiling);
        }
        _limits[unit][account] = uint256(uint128(floor)) | (uint256(uint128(ceiling)) << 128);
        uint256 w = _accounts[unit][account];
        _accounts[unit][account] = w.withFlags(w.flags() | AccountWord.CUSTOM_LIMITS);
        emit LimitsSet(unit, account, floor, ceiling);
    }

    function clearLimits(uint8 unit, address account) external onlyRole(GOVERNOR_ROLE) {
        _unitWord(unit);
        delete _limits[unit][account];
        uint256 w = _accounts[unit][account];
        _accounts[unit][account] = w.withFlags(w.flags() & ~AccountWord.CUSTOM_LIMITS);
        emit LimitsCleared(unit, account);
    }

    // ---- board controls ----

    /// Stops every payment and settlement until `resume`. The flag is copied into each
    /// unit's word, which every movement reads anyway, so a running ledger pays nothing
    /// for the check.
    function pause(string calldata reason) external onlyRole(BOARD_ROLE) {
        if (paused) revert LedgerPaused();
        paused = true;
        _setUnitFlag(UnitWord.PAUSED, true);
        emit Paused(msg.sender, reason);
    }

    function resume(string calldata reason) external onlyRole(BOARD_ROLE) {
        if (!paused) revert NotPaused();
        paused = false;
        _setUnitFlag(UnitWord.PAUSED, false);
        emit Resumed(msg.sender, reason);
    }

    /// A frozen account can neither pay, be paid nor be settled. The flag is copied into
    /// the account's word in every unit; an account word never touched before (a unit
    /// added later) is checked against `frozen` on its first touch.
    function freeze(address account, string calldata reason) external onlyRole(BOARD_ROLE) {
        if (frozen[account]) revert AccountFrozen(account);
        frozen[account] = true;
        _setAccountFlag(account, AccountWord.FROZEN, true);
        emit Frozen(account, msg.sender, reason);
    }

    function unfreeze(address account, string calldata reason) external onlyRole(BOARD_ROLE) {
        if (!frozen[account]) revert NotFrozen(account);
        frozen[account] = false;
        _setAccountFlag(account, AccountWord.FROZEN, false);
        emit Unfrozen(account, msg.sender, reason);
    }

    /// Sweeps the demurrage the given accounts owe into the fund. Anyone may call it; the
    /// settlement does it for every account it touches.
    function collect(uint8 unit, address[] calldata accounts) external {
        uint256 uw = _unitWord(unit);
        uint256 total;
        for (uint256 i = 0; i < accounts.length; ++i) {
            uint256 w = _accounts[unit][accounts[i]];
            uint256 owed = w.owed();
            if (owed != 0) {
                _accounts[unit][accounts[i]] = w & ~(uint256(type(uint32).max) << 216);
                total += owed;
            }
        }
        _units[unit] = UnitWord.withPending(uw, UnitWord.pending(uw) + total);
        emit Collected(unit, total);
    }

    // ---- views ----

    /// Balance as of now: demurrage due since the last touch deducted, and for the fund its
    /// pending collection added.
    function balanceOf(uint8 unit, address account) external view returns (int256) {
        uint256 uw = _units[unit];
        uint256 w = _accounts[unit][account];
        int256 bal = w.balance();
        if (account == FUND) return bal + int256(UnitWord.pending(uw));
        if (bal > 0 && UnitWord.rate(uw) != 0) {
            (uint256 c,) = Demurrage.charge(uint256(bal), UnitWord.rate(uw), block.timestamp - w.touchedAt(), w.dust());
            bal -= int256(c);
        }
        return bal;
    }

    /// The raw account word: stored balance, last touch, dust, next nonce, owed demurrage, flags.
    function accountState(uint8 unit, address account)
        external
        view
        returns (int256 balance, uint256 touchedAt, uint256 dust, uint256 nonce, uint256 owed, uint8 flags)
    {
        uint256 w = _accounts[unit][account];
        return (w.balance(), w.touchedAt(), w.dust(), w.nonce(), w.owed(), w.flags());
    }

    function unitState(uint8 unit)
        external
        view
        returns (uint256 pending, uint32 ratePpbPerDay, int64 floor, uint64 ceiling, uint8 flags)
    {
        uint256 w = _units[unit];
        return (
            UnitWord.pending(w),
            uint32(UnitWord.rate(w)),
            int64(UnitWord.floor(w)),
            uint64(uint256(UnitWord.ceiling(w))),
            UnitWord.flags(w)
        );
    }

    /// The floor and ceiling that apply to an account in a unit.
    function limitsOf(uint8 unit, address account) external view returns (int256 floor, int256 ceiling) {
        return _limitsOf(unit, account, _accounts[unit][account], _units[unit]);
    }

    // ---- internals ----

    function _unitWord(uint8 unit) internal view returns (uint256 w) {
        w = _units[unit];
        if (UnitWord.flags(w) & UnitWord.EXISTS == 0) revert UnknownUnit(unit);
    }

    /// The unit's word for a movement: it must exist and the ledger must not be paused.
    function _activeUnit(uint8 unit) internal view returns (uint256 w) {
        w = _units[unit];
        uint8 f = UnitWord.flags(w);
        if (f & UnitWord.EXISTS == 0) revert UnknownUnit(unit);
        if (f & UnitWord.PAUSED != 0) revert LedgerPaused();
    }

    function _limitsOf(uint8 unit, address account, uint256 w, uint256 uw)
        internal
        view
        returns (int256 floor, int256 ceiling)
    {
        if (w.flags() & AccountWord.CUSTOM_LIMITS != 0) {
            uint256 l = _limits[unit][account];
            return (int256(int128(uint128(l))), int256(int128(uint128(l >> 128))));
        }
        return (UnitWord.floor(uw), UnitWord.ceiling(uw));
    }

    /// Adds `amount` (signed) to `account` in `unit`, after charging the account's demurrage
    /// since its last touch. `uw` is the unit's word held by the caller, who writes it back
    /// once with the collected demurrage. A debit is checked against the floor, a credit
    /// against the ceiling, so limits tightened later never block a move back inside them.
    /// Someone who is not a member (nor the fund) has a floor of zero whatever the default.
    function _move(uint8 unit, uint256 uw, address account, int256 amount)
        internal
        returns (uint256, uint256 charge)
    {
        uint256 w;
        (uw, w, charge) = _moved(unit, uw, account, _accounts[unit][account], amount, 0, true);
        _accounts[unit][account] = w;
        return (uw, charge);
    }

    /// `_move` on an account word the caller already read; returns the words to store.
    /// With `sweep`, what the account owes (and this charge) goes to the unit's pending
    /// collection; without, the charge stays owed in the account's word unless it would
    /// overflow it.
    /// Written for gas (it runs twice per payment and once per settled member): the word is
    /// unpacked and packed by hand, and the arithmetic is unchecked where the ranges are
    /// proven — |balance| < 2**95, |amount| < 2**96, charge <= balance, nonce + 1 wraps only
    /// after 2**32 payments.
    function _moved(
        uint8 unit,
        uint256 uw,
        address account,
        uint256 w,
        int256 amount,
        uint256 nonceBump,
        bool sweep
    )
        internal
        view
        returns (uint256, uint256, uint256 charge)
    {
        unchecked {
            uint256 touched = uint40(w >> 96);
            if ((w >> 248) & AccountWord.FROZEN != 0 || (touched == 0 && frozen[account])) {
                revert AccountFrozen(account);
            }
            int256 bal = int96(uint96(w));
            uint256 dust = uint48(w >> 136);
            uint256 owed = uint32(w >> 216);
            if (account == FUND) {
                // The fund collects demurrage rather than paying it: sweep the collection in.
                bal += int256(uint256(uint88(uw)));
                uw &= ~uint256(type(uint88).max);
            } else if (bal > 0) {
                uint256 rate = uint32(uw >> 88);
                if (rate != 0) {
                    uint256 num = uint256(bal) * rate * (block.timestamp - touched) + dust;
                    charge = num / Demurrage.DENOMINATOR;
                    dust = num % Demurrage.DENOMINATOR;
                    if (charge >= uint256(bal)) {
                        charge = uint256(bal);
                        dust = 0;
                    }
                    bal -= int256(charge);
                    owed += charge;
                }
            }
            if (owed != 0 && (sweep || owed > type(uint32).max)) {
                if (uint88(uw) + owed > type(uint88).max) revert UnitWord.PendingOverflow();
                uw += owed; // pending is the word's low 88 bits
                owed = 0;
            }
            int256 next = bal + amount;
            if (amount < 0) {
                (int256 floor,) = _limitsOf(unit, account, w, uw);
                if (next < floor) revert BelowFloor(unit, account, floor, next);
                if (next < 0 && account != FUND && !isMember(account)) revert BelowFloor(unit, account, 0, next);
            } else if (amount > 0) {
                (, int256 ceiling) = _limitsOf(unit, account, w, uw);
                if (next > ceiling) revert AboveCeiling(unit, account, ceiling, next);
            }
            if (next != int256(int96(next))) revert AccountWord.BalanceOutOfRange(next);
            w = uint256(uint96(int96(next))) | (block.timestamp << 96) | (dust << 136)
                | (uint256(uint32((w >> 184) + nonceBump)) << 184) | (owed << 216) | (w & (uint256(0xff) << 248));
            return (uw, w, charge);
        }
    }

    function _setUnitFlag(uint8 flag, bool on) private {
        uint8 n = unitCount;
        for (uint8 u = 0; u < n; ++u) {
            uint256 w = _units[u];
            _units[u] = UnitWord.withFlags(w, on ? UnitWord.flags(w) | flag : UnitWord.flags(w) & ~flag);
        }
    }

    function _setAccountFlag(address account, uint8 flag, bool on) private {
        uint8 n = unitCount;
        for (uint8 u = 0; u < n; ++u) {
            uint256 w = _accounts[u][account];
            _accounts[u][account] = w.withFlags(on ? w.flags() | flag : w.flags() & ~flag);
        }
    }
}
