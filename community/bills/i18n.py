"""Words and number formats of statements, reports and e-mails, in French and English.

Figures are formatted the same way in both languages wherever a reader might compare
them with the CSV: energy in whole Wh without thousands separators. Only decimals differ
(a comma in French): percentages, euros, hours and kilograms.
"""

from __future__ import annotations

from decimal import Decimal

LANGS = ("fr", "en")

# Base units per display unit (same scales as the ledger and the web app).
SCALE = {"KWH": 1000, "HOUR": 100, "KG": 1000}
SYMBOL = {"KWH": "kWh", "HOUR": "h", "KG": "kg"}

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Energy statement",
        "credit_note": "Credit note",
        "member": "Member",
        "period": "Period",
        "run": "Billing run",
        "draft": "draft",
        "final": "final no. {n}",
        "issued": "Issued",
        "periods": "Settled days",
        "carried": "Days not settled (no valid meter claim)",
        "consumption": "Your consumption",
        "consumed_wh": "Drawn from the network",
        "community_wh": "from neighbours' roofs",
        "grid_wh": "from the public grid",
        "self_consumed_wh": "Your own production used at home",
        "total_consumption_wh": "Total consumption",
        "self_sufficiency": "Self-sufficiency (own and neighbours' energy)",
        "sources": "Where your neighbourhood energy came from",
        "a_neighbour": "a neighbour",
        "no_sources": "No energy from neighbours this period.",
        "production": "Your production",
        "produced_wh": "Produced",
        "shared_wh": "shared with neighbours",
        "exported_wh": "exported to the grid",
        "kwh": "Crypto-kWh (1 unit = 1 Wh)",
        "kwh.shared": "credited for energy shared",
        "kwh.export": "credited for energy exported",
        "kwh.community": "debited for neighbours' energy",
        "kwh.donation_given": "donations given",
        "kwh.donation_received": "donations received",
        "kwh.demurrage": "demurrage",
        "kwh.trade": "market trades",
        "balance": "Balance",
        "opening": "opening",
        "closing": "closing",
        "tokens": "Hours and goods",
        "no_tokens": "No hours or goods exchanged this period.",
        "reason.trade": "trade",
        "reason.demurrage": "demurrage",
        "reason.donation": "donation",
        "demurrage": "Demurrage",
        "donations": "Donations",
        "given_to": "given to {who}",
        "received_from": "received from {who}",
        "no_donations": "No donations this period.",
        "tariff": "Compared with your supplier",
        "tariff_price": "Your supplier's price",
        "saved": "Neighbours' energy at that price (saved)",
        "grid_cost": "Grid energy at that price (billed by your supplier)",
        "earned": "Energy shared and exported at that price (earned in crypto-kWh)",
        "no_tariff": "No supplier price configured: ask the board to add yours.",
        "corrects": "Corrects the statement of billing run no. {n} for {month}",
        "reason": "Reason",
        "difference": "Difference",
        "corrected": "Corrected figure",
        "footer": "Figures reconcile with the community ledger to the Wh. Statement fingerprint {sha}",
        "unit.KWH": "Wh",
        # digest
        "digest.subject": "Your week in the neighbourhood",
        "digest.hello": "Hello {name},",
        "digest.week": "Your week ({start} to {end})",
        "digest.offers": "New offers and wants",
        "digest.no_offers": "No new offers this week.",
        "digest.requests": "Open payment requests",
        "digest.no_requests": "No payment waiting for you.",
        "digest.request": "{description}: {amount} to {seller}, awaiting your confirmation",
        "digest.unsubscribe": "Stop these e-mails: {url}",
        "digest.kind.energy": "energy",
        "digest.kind.hours": "hours",
        "digest.kind.goods": "goods",
        "digest.kind.want": "wanted",
    },
    "fr": {
        "title": "Relevé d'énergie",
        "credit_note": "Avoir",
        "member": "Membre",
        "period": "Période",
        "run": "Facturation",
        "draft": "brouillon",
        "final": "définitive n° {n}",
        "issued": "Émis le",
        "periods": "Jours réglés",
        "carried": "Jours non réglés (pas de relevé signé valide)",
        "consumption": "Votre consommation",
        "consumed_wh": "Prélevé sur le réseau",
        "community_wh": "venant des toits voisins",
        "grid_wh": "venant du réseau public",
        "self_consumed_wh": "Votre production consommée chez vous",
        "total_consumption_wh": "Consommation totale",
        "self_sufficiency": "Autonomie (énergie propre et voisine)",
        "sources": "D'où venait votre énergie de quartier",
        "a_neighbour": "un voisin",
        "no_sources": "Pas d'énergie des voisins sur cette période.",
        "production": "Votre production",
        "produced_wh": "Produit",
        "shared_wh": "partagé avec les voisins",
        "exported_wh": "injecté sur le réseau",
        "kwh": "Crypto-kWh (1 unité = 1 Wh)",
        "kwh.shared": "crédités pour l'énergie partagée",
        "kwh.export": "crédités pour l'énergie injectée",
        "kwh.community": "débités pour l'énergie des voisins",
        "kwh.donation_given": "dons faits",
        "kwh.donation_received": "dons reçus",
        "kwh.demurrage": "fonte",
        "kwh.trade": "échanges sur le marché",
        "balance": "Solde",
        "opening": "début",
        "closing": "fin",
        "tokens": "Heures et biens",
        "no_tokens": "Aucune heure ni aucun bien échangé sur cette période.",
        "reason.trade": "échange",
        "reason.demurrage": "fonte",
        "reason.donation": "don",
        "demurrage": "Fonte (demurrage)",
        "donations": "Dons",
        "given_to": "donné à {who}",
        "received_from": "reçu de {who}",
        "no_donations": "Aucun don sur cette période.",
        "tariff": "Comparaison avec votre fournisseur",
        "tariff_price": "Prix de votre fournisseur",
        "saved": "Énergie des voisins à ce prix (économisé)",
        "grid_cost": "Énergie du réseau à ce prix (facturée par votre fournisseur)",
        "earned": "Énergie partagée et injectée à ce prix (gagné en crypto-kWh)",
        "no_tariff": "Aucun prix fournisseur configuré : demandez au bureau d'ajouter le vôtre.",
        "corrects": "Corrige le relevé de la facturation n° {n} de {month}",
        "reason": "Motif",
        "difference": "Écart",
        "corrected": "Valeur corrigée",
        "footer": "Chiffres rapprochés du registre de la communauté au Wh près. Empreinte du relevé {sha}",
        "unit.KWH": "Wh",
        "digest.subject": "Votre semaine dans le quartier",
        "digest.hello": "Bonjour {name},",
        "digest.week": "Votre semaine (du {start} au {end})",
        "digest.offers": "Nouvelles offres et demandes",
        "digest.no_offers": "Pas de nouvelle offre cette semaine.",
        "digest.requests": "Paiements en attente",
        "digest.no_requests": "Aucun paiement ne vous attend.",
        "digest.request": "{description} : {amount} à {seller}, en attente de votre confirmation",
        "digest.unsubscribe": "Ne plus recevoir ces e-mails : {url}",
        "digest.kind.energy": "énergie",
        "digest.kind.hours": "heures",
        "digest.kind.goods": "biens",
        "digest.kind.want": "demande",
    },
}


def t(lang: str, key: str, **kw: object) -> str:
    table = TEXT.get(lang, TEXT["en"])
    text = table.get(key) or TEXT["en"].get(key) or key
    return text.format(**kw) if kw else text


def _dec(value: Decimal, places: int, lang: str) -> str:
    s = f"{value:.{places}f}"
    return s.replace(".", ",") if lang == "fr" else s


def wh(n: int) -> str:
    """Energy: whole Wh, no separators, identical in every language and in the CSV."""
    return f"{n} Wh"


def pct(bp: int, lang: str) -> str:
    return _dec(Decimal(bp) / 100, 2, lang) + " %"


def euros(c: int, lang: str) -> str:
    return _dec(Decimal(c) / 100, 2, lang) + " €"


def tariff(ct: str, lang: str) -> str:
    return _dec(Decimal(ct), 2, lang) + " c€/kWh"


def amount(n: int, unit: str, lang: str) -> str:
    """A token amount in base units, shown in its display unit (Wh for crypto-kWh)."""
    if unit == "KWH":
        return wh(n)
    scale = SCALE.get(unit, 1)
    places = len(str(scale)) - 1
    return _dec(Decimal(n) / scale, places, lang) + " " + SYMBOL.get(unit, unit)
