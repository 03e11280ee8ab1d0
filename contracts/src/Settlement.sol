// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Balances} from "./Balances.sol";
import {UnitWord} from "./Words.sol";

/// The community's standing donation orders, as the ledger asks about them in settlement.
interface IStandingOrders {
    /// The order's donor and beneficiary if it is active and allows giving `wh` this period
    /// from a donor whose gateways claimed `donorExportWh`; reverts otherwise.
    function check(uint64 order, uint256 wh, uint256 donorExportWh) external view returns (address, address);
}

/// Settlement batches: one per period, carrying the net balance change of each account,
/// the root of the period's interval records, and each member's period claims signed by
/// their gateways. No one, not even the settler, can credit crypto-kWh that no meter
/// signed: a member's net credit in the metered unit is at most the export its active
/// gateways claimed for the period, its net debit at most their import.
///
/// Cost per member: its claim's calldata, one ecrecover, one read of the gateway's word
/// and one write of the member's balance word. Nothing else is touched per member; the
/// batch layout (sorted entries, claims grouped in the same order) lets the contract
/// match claims to entries in one pass without storage.
///
/// Standing donations ride in the same batch, after the entries: each names a standing
/// order the donor signed (`StandingOrders`), the Wh it gives this period and where the
/// donor's claims start. The orders contract bounds the amount by the order (a fixed Wh
/// per period, or a share of the donor's claimed export); the ledger bounds a donor's
/// gifts together by its claimed export and applies each as a movement of the metered
/// unit, under the ledger's rules. A period is settled once, so an order gives at most
/// once per period. Batches without donations pay nothing for this.
abstract contract Settlement is Balances {
    bytes32 public constant SETTLER_ROLE = keccak256("SETTLER_ROLE");

    bytes32 public constant CLAIM_TYPEHASH = keccak256(
        "PeriodClaim(bytes32 community,address gateway,uint64 periodStart,uint64 periodEnd,uint64 firstSeq,uint64 lastSeq,uint64 importedWh,uint64 exportedWh,uint64 producedWh,bytes32 intervalsRoot)"
    );
    /// Chain-agnostic domain (name and version only), so a gateway signs without knowing the
    /// chain; the claim names its community and period instead.
    bytes32 public immutable CLAIM_DOMAIN_SEPARATOR;
    /// keccak256 of the community id (UTF-8).
    bytes32 public immutable COMMUNITY;

    /// A gateway's signed period totals; the signature is EIP-2098 compact (r, yParity|s).
    struct Claim {
        address gateway;
        uint64 firstSeq;
        uint64 lastSeq;
        uint64 importedWh;
        uint64 exportedWh;
        uint64 producedWh;
        bytes32 intervalsRoot;
        bytes32 r;
        bytes32 vs;
    }

    /// A net balance change. Entries are sorted by (unit, account), strictly ascending.
    struct Entry {
        address account;
        uint8 unit;
        int96 amount;
    }

    struct Period {
        bytes32 intervalsRoot;
        uint64 periodEnd;
        uint64 settledAt;
        uint32 claims;
        uint32 entries;
    }

    /// A standing order executed in this batch: `wh` from the order's donor to its
    /// beneficiary; `claim` is the index of the donor's first claim in the batch.
    /// Donations are sorted by (donor, order), strictly ascending.
    struct Donation {
        uint64 order;
        uint32 claim;
        uint96 wh;
    }

    mapping(uint64 => Period) public periods;
    /// The standing orders contract donations are checked against (zero: none).
    IStandingOrders public standingOrders;

    event PeriodSettled(uint64 indexed periodId, uint64 periodEnd, bytes32 intervalsRoot, uint32 claims, uint32 entries);
    /// One per entry: the amount applied and the demurrage charged to the account when touched.
    event Settled(uint64 indexed periodId, address indexed account, uint8 unit, int256 amount, uint256 demurrage);
    /// A standing order executed: `unitAndAmount` and `demurrage` packed as in `Transferred`
    /// (charges to the donor in the low 128 bits, to the beneficiary in the high ones).
    event Donated(
        uint64 indexed periodId,
        uint64 indexed order,
        address indexed donor,
        address beneficiary,
        uint256 unitAndAmount,
        uint256 demurrage
    );
    event StandingOrdersSet(address orders);

    error PeriodAlreadySettled(uint64 periodId);
    error BadPeriod(uint64 periodStart, uint64 periodEnd);
    error EmptyIntervalsRoot();
    error EntriesNotSorted(uint256 index);
    error NotZeroSum(uint8 unit, int256 sum);
    error ClaimSignatureInvalid(address gateway, address signer);
    error GatewayNotActive(address gateway, uint64 periodStart, uint64 periodEnd);
    error ClaimsNotSorted(uint256 index);
    error UnmatchedClaim(uint256 index, address gateway);
    error CreditAboveClaims(address member, int256 credit, uint256 claimedExportWh);
    error DebitAboveClaims(address member, int256 debit, uint256 claimedImportWh);
    error NoStandingOrders();
    error DonationsNotSorted(uint256 index);
    error DonationWithoutClaims(uint256 index, address donor);
    error DonationAboveExport(address donor, uint256 given, uint256 claimedExportWh);
    error DonationMismatch(uint64 order, address donor, address claimsOf);

    constructor(bytes32 community) {
        COMMUNITY = community;
        CLAIM_DOMAIN_SEPARATOR = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version)"),
                keccak256("Quartier Period Claim"),
                keccak256("1")
            )
        );
    }

    function setStandingOrders(IStandingOrders orders) external onlyRole(DEFAULT_ADMIN_ROLE) {
        standingOrders = orders;
        emit StandingOrdersSet(address(orders));
    }

    function isSettled(uint64 periodId) external view returns (bool) {
        return periods[periodId].settledAt != 0;
    }

    function settle(
        uint64 periodId,
        uint64 periodEnd,
        bytes32 intervalsRoot,
        Claim[] calldata claims,
        Entry[] calldata entries,
        Donation[] calldata donations
    ) external onlyRole(SETTLER_ROLE) {
        if (periods[periodId].settledAt != 0) revert PeriodAlreadySettled(periodId);
        if (periodEnd <= periodId) revert BadPeriod(periodId, periodEnd);
        if (intervalsRoot == bytes32(0)) revert EmptyIntervalsRoot();
        periods[periodId] =
            Period(intervalsRoot, periodEnd, uint64(block.timestamp), uint32(claims.length), uint32(entries.length));

        uint256 prevKey;
        uint256 nextClaim;
        uint8 unit;
        uint256 uw;
        int256 sum;
        for (uint256 i = 0; i < entries.length; ++i) {
            Entry calldata e = entries[i];
            uint256 key = (uint256(e.unit) << 160) | uint160(e.account);
            if (key <= prevKey) revert EntriesNotSorted(i);
            if (i == 0 || e.unit != unit) {
                if (i != 0) _closeUnit(unit, uw, sum);
                unit = e.unit;
                uw = _activeUnit(unit);
                sum = 0;
            }
            prevKey = key;
            int256 amount = e.amount;
            if (uw & (uint256(UnitWord.METERED) << 248) != 0) {
                nextClaim = _checkCovered(periodId, periodEnd, e.account, amount, claims, nextClaim);
            }
            uint256 charge;
            (uw, charge) = _move(unit, uw, e.account, amount);
            sum += amount;
            emit Settled(periodId, e.account, unit, amount, charge);
        }
        if (entries.length != 0) _closeUnit(unit, uw, sum);
        if (nextClaim != claims.length) revert UnmatchedClaim(nextClaim, claims[nextClaim].gateway);
        if (donations.length != 0) _donate(periodId, claims, donations);
        emit PeriodSettled(periodId, periodEnd, intervalsRoot, uint32(claims.length), uint32(entries.length));
    }

    /// Applies the batch's donations; every claim has been verified by now.
    function _donate(uint64 periodId, Claim[] calldata claims, Donation[] calldata donations) private {
        IStandingOrders orders = standingOrders;
        if (address(orders) == address(0)) revert NoStandingOrders();
        uint8 unit = _meteredUnit();
        uint256 uw = _activeUnit(unit);
        address donor;
        uint256 exported;
        uint256 given;
        uint256 prevKey;
        for (uint256 i = 0; i < donations.length; ++i) {
            Donation calldata d = donations[i];
            uint256 first = d.claim;
            if (first >= claims.length) revert DonationWithoutClaims(i, address(0));
            address claimsOf = _gateways[claims[first].gateway].member;
            uint256 key = (uint256(uint160(claimsOf)) << 64) | d.order;
            if (key <= prevKey) revert DonationsNotSorted(i);
            prevKey = key;
            if (claimsOf != donor) {
                // A new donor: its claimed export, from the start of its run of claims.
                if (first != 0 && _gateways[claims[first - 1].gateway].member == claimsOf) {
                    revert DonationWithoutClaims(i, claimsOf);
                }
                donor = claimsOf;
                exported = 0;
                given = 0;
                for (uint256 j = first; j < claims.length && _gateways[claims[j].gateway].member == donor; ++j) {
                    exported += claims[j].exportedWh;
                }
            }
            (address from, address to) = orders.check(d.order, d.wh, exported);
            if (from != donor) revert DonationMismatch(d.order, from, donor);
            given += d.wh;
            if (given > exported) revert DonationAboveExport(donor, given, exported);
            uint256 c1;
            uint256 c2;
            (uw, c1) = _move(unit, uw, from, -int256(uint256(d.wh)));
            (uw, c2) = _move(unit, uw, to, int256(uint256(d.wh)));
            emit Donated(periodId, d.order, from, to, (uint256(unit) << 248) | d.wh, c1 | (c2 << 128));
        }
        _units[unit] = uw;
    }

    function _meteredUnit() private view returns (uint8 u) {
        uint8 n = unitCount;
        for (; u < n; ++u) {
            if (UnitWord.flags(_units[u]) & UnitWord.METERED != 0) return u;
        }
        revert UnknownUnit(type(uint8).max);
    }

    function _closeUnit(uint8 unit, uint256 uw, int256 sum) private {
        if (sum != 0) revert NotZeroSum(unit, sum);
        _units[unit] = uw;
    }

    /// Verifies the claims of `member` (the run starting at claims[next]) and checks that
    /// they cover `amount`. Returns the index of the first claim of the next member.
    function _checkCovered(
        uint64 periodStart,
        uint64 periodEnd,
        address member,
        int256 amount,
        Claim[] calldata claims,
        uint256 next
    ) private view returns (uint256) {
        if (member == FUND) return next; // the fund is the community's grid account
        uint256 exported;
        uint256 imported;
        address prevGateway;
        while (next < claims.length) {
            Claim calldata c = claims[next];
            Gateway storage g = _gateways[c.gateway];
            if (g.member != member) break;
            // Ascending gateways within a member: a claim counted twice would double its cover.
            if (c.gateway <= prevGateway) revert ClaimsNotSorted(next);
            prevGateway = c.gateway;
            if (g.activeFrom > periodStart || (g.activeTo != 0 && g.activeTo < periodEnd)) {
                revert GatewayNotActive(c.gateway, periodStart, periodEnd);
            }
            address signer = ECDSA.recover(_claimDigest(periodStart, periodEnd, c), c.r, c.vs);
            if (signer != c.gateway) revert ClaimSignatureInvalid(c.gateway, signer);
            exported += c.exportedWh;
            imported += c.importedWh;
            ++next;
        }
        if (amount > 0 && uint256(amount) > exported) revert CreditAboveClaims(member, amount, exported);
        if (amount < 0 && uint256(-amount) > imported) revert DebitAboveClaims(member, -amount, imported);
        return next;
    }

    /// EIP-712 digest of a claim, hashed in scratch memory that is reused for every claim
    /// (abi.encode would allocate 352 bytes per claim and grow memory with the batch).
    function _claimDigest(uint64 periodStart, uint64 periodEnd, Claim calldata c) private view returns (bytes32 d) {
        bytes32 typehash = CLAIM_TYPEHASH;
        bytes32 community = COMMUNITY;
        bytes32 domain = CLAIM_DOMAIN_SEPARATOR;
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, typehash)
            mstore(add(p, 0x20), community)
            mstore(add(p, 0x40), calldataload(c)) // gateway
            mstore(add(p, 0x60), periodStart)
            mstore(add(p, 0x80), periodEnd)
            calldatacopy(add(p, 0xa0), add(c, 0x20), 0xc0) // firstSeq .. intervalsRoot
            let structHash := keccak256(p, 0x160)
            mstore(p, 0x1901)
            mstore(add(p, 0x20), domain)
            mstore(add(p, 0x40), structHash)
            d := keccak256(add(p, 0x1e), 0x42)
        }
    }
}
