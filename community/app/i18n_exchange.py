"""French and English texts of energy trades on the Exchange contract; merged into
`i18n.CATALOGUE` when it loads."""

from __future__ import annotations

EN = {
    "err.exchange_lot": "This energy is sold on the ledger as one lot of {lot}: buy the whole lot.",
    "err.exchange_unit": "This offer cannot be paid in {unit} on the ledger; it can be paid in: {units}.",
    "err.exchange_used": "This offer of {lot} was already taken or withdrawn on the ledger: your payment of {amount} was not made.",
    "err.exchange_expired": "This offer of {lot} has expired on the ledger: your payment of {amount} was not made.",
    "err.exchange_inexact": "At the community rate, {lot} is not worth a whole number of {unit} base units, and the ledger never rounds: nothing was paid.",
    "err.exchange_norate": "The ledger has no community rate between {unit} and energy: nothing was paid.",
    "err.exchange_rate": "The ledger prices {lot} at {chain}, the app at {app}: the board must align the community rates; nothing was paid.",
    "err.exchange_rate_whole": "The community rate of {unit} is not a whole number of Wh per base unit: the ledger cannot use it.",
    "err.exchange_seller_floor": "The ledger refused the trade: the seller's energy balance would fall to {after}, {short} below their floor of {floor}; nothing was paid.",
}

FR = {
    "err.exchange_lot": "Cette énergie est vendue sur le registre en un seul lot de {lot} : achetez le lot entier.",
    "err.exchange_unit": "Cette offre ne peut pas être payée en {unit} sur le registre ; elle peut l'être en : {units}.",
    "err.exchange_used": "Cette offre de {lot} a déjà été prise ou retirée sur le registre : votre paiement de {amount} n'a pas été fait.",
    "err.exchange_expired": "Cette offre de {lot} a expiré sur le registre : votre paiement de {amount} n'a pas été fait.",
    "err.exchange_inexact": "Au taux de la communauté, {lot} ne vaut pas un nombre entier d'unités de base de {unit}, et le registre n'arrondit jamais : rien n'a été payé.",
    "err.exchange_norate": "Le registre n'a pas de taux de la communauté entre {unit} et l'énergie : rien n'a été payé.",
    "err.exchange_rate": "Le registre estime {lot} à {chain}, l'application à {app} : le bureau doit aligner les taux de la communauté ; rien n'a été payé.",
    "err.exchange_rate_whole": "Le taux de la communauté de {unit} n'est pas un nombre entier de Wh par unité de base : le registre ne peut pas l'utiliser.",
    "err.exchange_seller_floor": "Le registre a refusé l'échange : le solde d'énergie du vendeur tomberait à {after}, {short} sous son plancher de {floor} ; rien n'a été payé.",
}

TEXTS = {"en": EN, "fr": FR}
