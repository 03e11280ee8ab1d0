// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ILedger} from "./ILedger.sol";
import {MemberIntents} from "./MemberIntents.sol";

/// Community reference rates between units, and atomic two-leg trades at those rates.
///
/// A rate says how many base units of one unit are worth how many of another
/// (`setRate(HOUR, KWH, 100, 100_000)`: 1.00 h = 100 kWh); governance sets it and the
/// reverse direction follows. A maker signs an `Offer` (unit given, amount, unit wanted,
/// nonce, deadline); a taker takes it with a signed `Take` naming the offer's hash, and
/// both legs move in one transaction through the ledger, each under the ledger's own
/// rules (floors and ceilings with the amounts, frozen accounts, pause, demurrage). The
/// price must be a whole number of base units: a trade never rounds in anyone's favour.
/// An offer is used once (taken or cancelled), so it carries its own nonce, chosen freely
/// by the maker, and a maker can keep several offers open.
contract Exchange is AccessControl, MemberIntents {
    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    bytes32 public constant OFFER_TYPEHASH =
        keccak256("Offer(address maker,uint8 give,uint256 amount,uint8 want,uint64 nonce,uint64 deadline)");
    bytes32 public constant TAKE_TYPEHASH = keccak256("Take(address taker,bytes32 offer,uint64 deadline)");
    bytes32 public constant CANCEL_TYPEHASH = keccak256("CancelOffer(address maker,uint64 nonce,uint64 deadline)");

    struct Offer {
        address maker;
        uint8 give;
        uint256 amount;
        uint8 want;
        uint64 nonce;
        uint64 deadline;
    }

    ILedger public immutable LEDGER;
    /// give => want => (giveAmount | wantAmount << 128): `giveAmount` of `give` is worth
    /// `wantAmount` of `want`.
    mapping(uint8 => mapping(uint8 => uint256)) internal _rates;
    /// maker => offer nonce => taken or cancelled.
    mapping(address => mapping(uint64 => bool)) public offerUsed;

    event RateSet(uint8 indexed base, uint8 indexed quote, uint128 baseAmount, uint128 quoteAmount);
    event Traded(
        bytes32 indexed offer,
        address indexed maker,
        address indexed taker,
        uint64 nonce,
        uint8 give,
        uint256 amount,
        uint8 want,
        uint256 price
    );
    event OfferCancelled(address indexed maker, uint64 nonce);

    error NoRate(uint8 give, uint8 want);
    error BadRate(uint8 base, uint8 quote, uint128 baseAmount, uint128 quoteAmount);
    error InexactTrade(uint256 amount, uint128 giveAmount, uint128 wantAmount);
    error OfferAlreadyUsed(address maker, uint64 nonce);
    error SelfTrade(address account);
    error ZeroAmount();

    constructor(ILedger ledger, address admin) EIP712("Quartier Exchange", "1") {
        LEDGER = ledger;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GOVERNOR_ROLE, admin);
    }

    /// `baseAmount` base units of `base` are worth `quoteAmount` of `quote`, and the
    /// reverse. Both zero withdraws the rate (no trade between the two units).
    function setRate(uint8 baseUnit, uint8 quoteUnit, uint128 baseAmount, uint128 quoteAmount)
        external
        onlyRole(GOVERNOR_ROLE)
    {
        if (baseUnit == quoteUnit || (baseAmount == 0) != (quoteAmount == 0)) {
            revert BadRate(baseUnit, quoteUnit, baseAmount, quoteAmount);
        }
        _rates[baseUnit][quoteUnit] = uint256(baseAmount) | (uint256(quoteAmount) << 128);
        _rates[quoteUnit][baseUnit] = uint256(quoteAmount) | (uint256(baseAmount) << 128);
        emit RateSet(baseUnit, quoteUnit, baseAmount, quoteAmount);
    }

    function rateOf(uint8 give, uint8 want) external view returns (uint128 giveAmount, uint128 wantAmount) {
        uint256 r = _rates[give][want];
        return (uint128(r), uint128(r >> 128));
    }

    /// What `amount` of `give` is worth in `want` at the reference rate.
    function quote(uint8 give, uint256 amount, uint8 want) public view returns (uint256 price) {
        uint256 r = _rates[give][want];
        if (r == 0) revert NoRate(give, want);
        uint256 num = amount * uint256(uint128(r >> 128));
        if (num % uint128(r) != 0) revert InexactTrade(amount, uint128(r), uint128(r >> 128));
        return num / uint128(r);
    }

    function offerHash(Offer calldata o) public pure returns (bytes32) {
        return keccak256(abi.encode(OFFER_TYPEHASH, o.maker, o.give, o.amount, o.want, o.nonce, o.deadline));
    }

    /// The digest a maker signs for `o`, for wallets and tests.
    function offerDigest(Offer calldata o) external view returns (bytes32) {
        return _hashTypedDataV4(offerHash(o));
    }

    /// Takes the maker's signed offer for `taker`, whose `Take` intent names the offer:
    /// the maker's `amount` of `give` goes to the taker, its price in `want` to the maker.
    function take(Offer calldata o, bytes calldata makerSig, address taker, uint64 takerDeadline, bytes calldata takerSig)
        external
        returns (uint256 price)
    {
        if (o.amount == 0) revert ZeroAmount();
        if (taker == o.maker) revert SelfTrade(taker);
        if (offerUsed[o.maker][o.nonce]) revert OfferAlreadyUsed(o.maker, o.nonce);
        bytes32 h = offerHash(o);
        _checkSigned(o.maker, h, o.deadline, makerSig);
        _checkSigned(taker, keccak256(abi.encode(TAKE_TYPEHASH, taker, h, takerDeadline)), takerDeadline, takerSig);
        offerUsed[o.maker][o.nonce] = true;
        price = quote(o.give, o.amount, o.want);
        LEDGER.move(o.give, o.maker, taker, o.amount);
        LEDGER.move(o.want, taker, o.maker, price);
        emit Traded(h, o.maker, taker, o.nonce, o.give, o.amount, o.want, price);
    }

    /// Withdraws an open offer, on the maker's signed `CancelOffer`.
    function cancelOffer(address maker, uint64 nonce, uint64 deadline, bytes calldata sig) external {
        if (offerUsed[maker][nonce]) revert OfferAlreadyUsed(maker, nonce);
        _checkSigned(maker, keccak256(abi.encode(CANCEL_TYPEHASH, maker, nonce, deadline)), deadline, sig);
        offerUsed[maker][nonce] = true;
        emit OfferCancelled(maker, nonce);
    }
}
