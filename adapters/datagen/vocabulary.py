"""Reference lists and weighted draws for the synthetic data.

Everything generated from these lists is invented. Names are drawn at random
from lists of common Canadian surnames and given names and combined freely;
telephone numbers use the fictional 555-01xx range. No real person's data is
used. Institution, court and city names are public place names; offence codes
are Criminal Code and CDSA sections.
"""

from __future__ import annotations

from .common import Pick, decreasing

ACTIVE = frozenset({"IN_CUSTODY", "SUPERVISED", "UAL"})

JURISDICTIONS = ("BC", "ON", "QC", "SK", "YT", "AB", "MB", "NS", "NB", "NL", "PE", "NT", "NU")

#: Where federal offenders come from (share of the federal population).
FEDERAL_HOME = Pick([
    ("ON", 29.0), ("QC", 19.0), ("BC", 12.0), ("AB", 14.0), ("SK", 7.0), ("MB", 8.0),
    ("NS", 3.0), ("NB", 3.0), ("NL", 2.0), ("PE", 0.4), ("YT", 0.4), ("NT", 0.6), ("NU", 0.6),
])

_CITIES: dict[str, tuple[str, ...]] = {
    "BC": ("Vancouver", "Surrey", "Prince George", "Kamloops", "Nanaimo", "Victoria", "Kelowna",
           "Chilliwack"),
    "ON": ("Toronto", "Ottawa", "Hamilton", "London", "Thunder Bay", "Sudbury", "Kingston",
           "Windsor", "Sault Ste. Marie", "Brampton"),
    "QC": ("Montréal", "Québec", "Laval", "Gatineau", "Sherbrooke", "Trois-Rivières", "Saguenay",
           "Longueuil", "Rimouski", "Val-d'Or", "Sept-Îles"),
    "SK": ("Saskatoon", "Regina", "Prince Albert", "Moose Jaw", "North Battleford", "La Ronge"),
    "YT": ("Whitehorse", "Dawson City", "Watson Lake"),
    "AB": ("Edmonton", "Calgary", "Red Deer", "Lethbridge", "Grande Prairie"),
    "MB": ("Winnipeg", "Brandon", "Thompson"),
    "NS": ("Halifax", "Sydney", "Truro"),
    "NB": ("Moncton", "Saint John", "Fredericton", "Bathurst"),
    "NL": ("St. John's", "Corner Brook"),
    "PE": ("Charlottetown", "Summerside"),
    "NT": ("Yellowknife", "Inuvik"),
    "NU": ("Iqaluit", "Rankin Inlet"),
}
CITY_PICK = {jur: decreasing(cities) for jur, cities in _CITIES.items()}

FOREIGN_BIRTHPLACES: tuple[str, ...] = (
    "Port-au-Prince, Haiti", "Kingston, Jamaica", "Manila, Philippines",
    "Ho Chi Minh City, Viet Nam", "Mogadishu, Somalia", "Beirut, Lebanon", "Ludhiana, India",
    "Lisbon, Portugal", "Bogotá, Colombia", "San Salvador, El Salvador", "Kinshasa, DR Congo",
    "Alger, Algérie", "Casablanca, Maroc", "Glasgow, United Kingdom", "Detroit, United States",
)

POSTAL_LETTERS = {
    "BC": "V", "ON": "KLMNP", "QC": "HGJ", "SK": "S", "YT": "Y", "AB": "T", "MB": "R",
    "NS": "B", "NB": "E", "NL": "A", "PE": "C", "NT": "X", "NU": "X",
}
POSTAL_ALPHA = "ABCEGHJKLMNPRSTVWXYZ"

AREA_CODES = {
    "BC": ("604", "250", "778"), "ON": ("416", "613", "705", "519", "807"),
    "QC": ("514", "418", "819", "450"), "SK": ("306", "639"), "YT": ("867",),
    "AB": ("403", "780"), "MB": ("204",), "NS": ("902",), "NB": ("506",), "NL": ("709",),
    "PE": ("902",), "NT": ("867",), "NU": ("867",),
}

STREETS_EN: tuple[str, ...] = (
    "Main Street", "King Street", "Queen Street", "Victoria Avenue", "1st Avenue",
    "2nd Avenue", "Oak Street", "Maple Drive", "Birch Crescent", "Park Road", "Lakeshore Road",
    "Hillside Avenue", "River Road", "Elm Street", "Cedar Lane", "Railway Street",
)
STREETS_FR: tuple[str, ...] = (
    "rue Principale", "rue Saint-Jean", "rue Notre-Dame", "rue de l'Église", "chemin du Lac",
    "avenue des Érables", "rue Sainte-Catherine", "rang Saint-Joseph", "boulevard des Laurentides",
    "rue du Moulin", "avenue Champlain",
)

SURNAMES_FR: tuple[str, ...] = (
    "Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "Gauthier", "Morin", "Lavoie", "Fortin",
    "Gagné", "Ouellet", "Pelletier", "Bélanger", "Lévesque", "Bergeron", "Leblanc", "Paquette",
    "Girard", "Simard", "Boucher", "Caron", "Beaulieu", "Cloutier", "Dubé", "Poirier",
    "Fournier", "Lapointe", "Leclerc", "Lefebvre", "Poulin", "Thibault", "St-Pierre", "Nadeau",
    "Martin", "Landry", "Martel", "Bédard", "Grenier", "Lessard", "Bernier", "Richard",
    "Michaud", "Hébert", "Desjardins", "Couture", "Turcotte", "Lachance", "Parent", "Blais",
    "Gosselin", "Savard", "Proulx", "Beaudoin", "Demers", "Perreault", "Boudreau", "Lemieux",
    "Cyr", "Perron", "Dufour", "Dion", "Mercier", "Bolduc", "Bérubé", "Boisvert", "Langlois",
    "Ménard", "Thériault", "Gélinas", "Désilets", "Brisson", "Vézina", "Létourneau",
    "Charbonneau", "Paré", "Séguin", "Lacasse", "Ducharme", "D'Amours", "Chénier",
)
SURNAMES_EN: tuple[str, ...] = (
    "Smith", "Brown", "Wilson", "Taylor", "Campbell", "Anderson", "Jones", "Williams",
    "Johnson", "Miller", "MacDonald", "Thompson", "White", "Lee", "Wong", "Singh", "Patel", "Li",
    "Chen", "Nguyen", "Kim", "Clark", "Young", "Walker", "Robinson", "Scott", "Stewart", "Reid",
    "Murray", "Ross", "Fraser", "Graham", "Morrison", "Kennedy", "Hughes", "O'Brien", "O'Neil",
    "O'Connor", "O'Reilly", "McLean", "MacKenzie", "McKay", "Sinclair", "Harris", "Lewis",
    "King", "Wright", "Mitchell", "Roberts", "Baker", "Hall", "Allen", "Bell", "Cook", "Gill",
    "Sandhu", "Dhillon", "Grewal", "Sidhu", "Bird", "Cardinal", "Sutherland", "Thomas",
    "Joseph", "Daniels", "Linklater", "Favel", "Johnston", "Moore", "Hill", "Green", "Adams",
    "Nelson", "Carter", "Evans", "Turner", "Parker", "Collins", "Edwards", "Murphy", "Cooper",
    "Ward", "Rossi", "Silva", "Santos", "Kowalski", "Nowak", "Petrov", "Ahmed", "Ali",
    "Hussein", "Mohamed", "Khan", "Osman", "Haile", "Mensah", "Okafor", "Martin", "Leblanc",
)
GIVEN_FR_M: tuple[str, ...] = (
    "Jean", "Marc", "Luc", "François", "Jérôme", "Sébastien", "Éric", "Stéphane", "Mathieu",
    "Maxime", "Olivier", "Alexandre", "Guillaume", "Jean-François", "Pierre-Luc", "Gabriel",
    "Félix", "Louis", "Samuel", "William", "Étienne", "Frédéric", "Benoît", "Denis", "Réjean",
    "Gaétan", "Yves", "André", "Michel", "Sylvain", "Patrice", "Mario", "Dany", "Kevin",
    "Jonathan", "Jean-Philippe", "Marc-André", "Hugo", "Thomas", "Antoine", "Émile", "Raphaël",
    "Noël", "Rémi", "Joël", "Jacques", "Pierre", "Claude",
)
GIVEN_FR_F: tuple[str, ...] = (
    "Marie", "Hélène", "Zoé", "Geneviève", "Mélanie", "Isabelle", "Julie", "Marie-Ève",
    "Chloé", "Émilie", "Andrée", "Josée", "Nathalie", "Brigitte", "Amélie", "Noémie", "Sophie",
    "Véronique", "Caroline", "Audrey", "Catherine", "Mélissa", "Karine", "Stéphanie",
    "Valérie", "Annie", "Lucie", "Françoise", "Gisèle", "Léa", "Océane", "Rosalie", "Ève",
    "Céline", "Solange",
)
GIVEN_EN_M: tuple[str, ...] = (
    "James", "John", "Robert", "Michael", "David", "Daniel", "Matthew", "Ryan", "Tyler",
    "Kevin", "Jason", "Brandon", "Justin", "Cody", "Dustin", "Christopher", "Joshua", "Andrew",
    "Brian", "Steven", "Mark", "Paul", "Richard", "Thomas", "William", "Joseph", "Jordan",
    "Travis", "Shane", "Derek", "Kyle", "Curtis", "Trevor", "Darren", "Wayne", "Gurpreet",
    "Harjit", "Rajinder", "Wei", "Minh", "Ahmed", "Omar", "Mohamed", "Ali", "Hassan", "Carlos",
    "Luis", "Dmitri", "Seán", "Liam", "Ethan", "Noah", "Logan", "Dale", "Colton",
)
GIVEN_EN_F: tuple[str, ...] = (
    "Sarah", "Jessica", "Ashley", "Amanda", "Jennifer", "Melissa", "Stephanie", "Nicole",
    "Crystal", "Heather", "Amber", "Brittany", "Samantha", "Kayla", "Tiffany", "Rebecca",
    "Laura", "Karen", "Lisa", "Michelle", "Angela", "Kimberly", "Shannon", "Tanya", "Cheyenne",
    "Destiny", "Harpreet", "Jasmine", "Mei", "Linh", "Fatima", "Amina", "Maria", "Ana", "Renée",
    "Chloë", "Dawn",
)
GIVEN_FR = GIVEN_FR_M + GIVEN_FR_F
GIVEN_EN = GIVEN_EN_M + GIVEN_EN_F
NICKNAMES: tuple[str, ...] = (
    "Bobby", "Mikey", "Ti-Jean", "Junior", "Tony", "Danny", "Jay", "Red", "Max", "J.F.",
    "Smitty", "Kid", "Ti-Loup", "Frankie", "Sly", "Bones", "Cat", "Lulu", "Dee", "Roxy",
)

FRENCH_SHARE = {"QC": 0.85, "NB": 0.35, "ON": 0.14}

#: Federal institutions: name, province, security level, for women.
_FED_INSTITUTIONS: tuple[tuple[str, str, str, bool], ...] = (
    ("Kent Institution", "BC", "MAXIMUM", False),
    ("Mountain Institution", "BC", "MEDIUM", False),
    ("Matsqui Institution", "BC", "MEDIUM", False),
    ("Mission Institution", "BC", "MULTI", False),
    ("William Head Institution", "BC", "MINIMUM", False),
    ("Pacific Institution", "BC", "MULTI", False),
    ("Kwìkwèxwelhp Healing Village", "BC", "MINIMUM", False),
    ("Fraser Valley Institution for Women", "BC", "MULTI", True),
    ("Edmonton Institution", "AB", "MAXIMUM", False),
    ("Drumheller Institution", "AB", "MEDIUM", False),
    ("Bowden Institution", "AB", "MEDIUM", False),
    ("Grierson Centre", "AB", "MINIMUM", False),
    ("Pê Sâkâstêw Centre", "AB", "MINIMUM", False),
    ("Edmonton Institution for Women", "AB", "MULTI", True),
    ("Saskatchewan Penitentiary", "SK", "MULTI", False),
    ("Regional Psychiatric Centre", "SK", "MULTI", False),
    ("Willow Cree Healing Lodge", "SK", "MINIMUM", False),
    ("Okimaw Ohci Healing Lodge", "SK", "MINIMUM", True),
    ("Stony Mountain Institution", "MB", "MULTI", False),
    ("Millhaven Institution", "ON", "MAXIMUM", False),
    ("Collins Bay Institution", "ON", "MULTI", False),
    ("Joyceville Institution", "ON", "MEDIUM", False),
    ("Bath Institution", "ON", "MEDIUM", False),
    ("Warkworth Institution", "ON", "MEDIUM", False),
    ("Beaver Creek Institution", "ON", "MINIMUM", False),
    ("Grand Valley Institution for Women", "ON", "MULTI", True),
    ("Donnacona Institution", "QC", "MAXIMUM", False),
    ("Port-Cartier Institution", "QC", "MAXIMUM", False),
    ("Archambault Institution", "QC", "MEDIUM", False),
    ("Cowansville Institution", "QC", "MEDIUM", False),
    ("La Macaza Institution", "QC", "MEDIUM", False),
    ("Drummond Institution", "QC", "MEDIUM", False),
    ("Federal Training Centre", "QC", "MULTI", False),
    ("Joliette Institution for Women", "QC", "MULTI", True),
    ("Atlantic Institution", "NB", "MAXIMUM", False),
    ("Dorchester Penitentiary", "NB", "MULTI", False),
    ("Springhill Institution", "NS", "MEDIUM", False),
    ("Nova Institution for Women", "NS", "MULTI", True),
)
CSC_REGION = {
    "BC": "PAC", "YT": "PAC", "AB": "PRA", "SK": "PRA", "MB": "PRA", "NT": "PRA", "NU": "PRA",
    "ON": "ONT", "QC": "QUE", "NS": "ATL", "NB": "ATL", "NL": "ATL", "PE": "ATL",
}
REGION_INSTITUTIONS: dict[tuple[str, bool], tuple[tuple[str, str, str, bool], ...]] = {
    (region, women): tuple(
        inst for inst in _FED_INSTITUTIONS if CSC_REGION[inst[1]] == region and inst[3] == women
    )
    for region in set(CSC_REGION.values())
    for women in (False, True)
}
PERSON_LEVEL = Pick([("MINIMUM", 33.0), ("MEDIUM", 45.0), ("MAXIMUM", 15.0), ("MULTI", 7.0)])

#: Provincial and territorial facilities: (for men, for women).
PROV_FACILITIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "BC": (("North Fraser Pretrial Centre", "Surrey Pretrial Services Centre",
            "Fraser Regional Correctional Centre", "Ford Mountain Correctional Centre",
            "Okanagan Correctional Centre", "Prince George Regional Correctional Centre",
            "Nanaimo Correctional Centre", "Kamloops Regional Correctional Centre",
            "Vancouver Island Regional Correctional Centre"),
           ("Alouette Correctional Centre for Women",)),
    "ON": (("Toronto South Detention Centre", "Maplehurst Correctional Complex",
            "Central East Correctional Centre", "Central North Correctional Centre",
            "Ottawa-Carleton Detention Centre", "Elgin-Middlesex Detention Centre",
            "Thunder Bay Correctional Centre", "Quinte Detention Centre",
            "Hamilton-Wentworth Detention Centre", "South West Detention Centre"),
           ("Vanier Centre for Women", "Ottawa-Carleton Detention Centre")),
    "QC": (("Établissement de détention de Montréal", "Établissement de détention de Québec",
            "Établissement de détention de Rivière-des-Prairies",
            "Établissement de détention de Sherbrooke",
            "Établissement de détention de Trois-Rivières", "Établissement de détention de Hull",
            "Établissement de détention de Saint-Jérôme",
            "Établissement de détention de Sept-Îles", "Établissement de détention d'Amos",
            "Établissement de détention de Roberval"),
           ("Établissement de détention Leclerc de Laval",)),
    "SK": (("Regina Correctional Centre", "Saskatoon Correctional Centre",
            "Prince Albert Correctional Centre"),
           ("Pine Grove Correctional Centre",)),
    "YT": (("Whitehorse Correctional Centre",), ("Whitehorse Correctional Centre",)),
}

COURTS: dict[str, tuple[str, str]] = {  # (provincial court, superior court)
    "BC": ("Provincial Court of British Columbia", "Supreme Court of British Columbia"),
    "ON": ("Ontario Court of Justice", "Ontario Superior Court of Justice"),
    "QC": ("Cour du Québec", "Cour supérieure du Québec"),
    "SK": ("Provincial Court of Saskatchewan", "Court of King's Bench for Saskatchewan"),
    "YT": ("Territorial Court of Yukon", "Supreme Court of Yukon"),
    "AB": ("Alberta Court of Justice", "Court of King's Bench of Alberta"),
    "MB": ("Provincial Court of Manitoba", "Court of King's Bench of Manitoba"),
    "NS": ("Provincial Court of Nova Scotia", "Supreme Court of Nova Scotia"),
    "NB": ("Provincial Court of New Brunswick", "Court of King's Bench of New Brunswick"),
    "NL": ("Provincial Court of Newfoundland and Labrador",
           "Supreme Court of Newfoundland and Labrador"),
    "PE": ("Provincial Court of Prince Edward Island", "Supreme Court of Prince Edward Island"),
    "NT": ("Territorial Court of the Northwest Territories",
           "Supreme Court of the Northwest Territories"),
    "NU": ("Nunavut Court of Justice", "Nunavut Court of Justice"),
}

# (code, English description, French description, kind)
_Offence = tuple[str, str, str, str]
OFFENCES: dict[str, _Offence] = {o[0]: o for o in (
    ("CC 235", "First or second degree murder", "Meurtre au premier ou au deuxième degré",
     "violent"),
    ("CC 236", "Manslaughter", "Homicide involontaire coupable", "violent"),
    ("CC 239", "Attempted murder", "Tentative de meurtre", "violent"),
    ("CC 266", "Assault", "Voies de fait", "violent"),
    ("CC 267", "Assault with a weapon or causing bodily harm",
     "Agression armée ou infliction de lésions corporelles", "violent"),
    ("CC 268", "Aggravated assault", "Voies de fait graves", "violent"),
    ("CC 271", "Sexual assault", "Agression sexuelle", "sexual"),
    ("CC 151", "Sexual interference", "Contacts sexuels", "sexual"),
    ("CC 163.1", "Child pornography", "Pornographie juvénile", "sexual"),
    ("CC 344", "Robbery", "Vol qualifié", "violent"),
    ("CC 348", "Break and enter", "Introduction par effraction", "property"),
    ("CC 334", "Theft", "Vol", "property"),
    ("CC 380", "Fraud", "Fraude", "property"),
    ("CC 355", "Possession of property obtained by crime",
     "Possession de biens criminellement obtenus", "property"),
    ("CC 320.14", "Operation while impaired", "Conduite avec capacités affaiblies", "other"),
    ("CC 145", "Failure to comply with a release order",
     "Défaut de se conformer à une ordonnance de mise en liberté", "other"),
    ("CC 733.1", "Failure to comply with a probation order",
     "Défaut de se conformer à une ordonnance de probation", "other"),
    ("CC 264.1", "Uttering threats", "Proférer des menaces", "violent"),
    ("CC 264", "Criminal harassment", "Harcèlement criminel", "violent"),
    ("CC 430", "Mischief", "Méfait", "property"),
    ("CC 95", "Possession of a prohibited or restricted firearm",
     "Possession d'une arme à feu prohibée ou à autorisation restreinte", "violent"),
    ("CC 279", "Kidnapping", "Enlèvement", "violent"),
    ("CDSA 5(2)", "Possession for the purpose of trafficking", "Possession en vue du trafic",
     "drug"),
    ("CDSA 5(1)", "Trafficking in a controlled substance", "Trafic de substances", "drug"),
    ("CDSA 6(1)", "Importing a controlled substance", "Importation de substances", "drug"),
)}
FED_OFFENCE = Pick([
    ("CC 344", 14.0), ("CC 267", 8.0), ("CC 268", 5.0), ("CC 271", 10.0), ("CC 151", 4.0),
    ("CC 163.1", 3.0), ("CDSA 5(2)", 9.0), ("CDSA 5(1)", 6.0), ("CDSA 6(1)", 4.0),
    ("CC 236", 3.0), ("CC 239", 2.0), ("CC 348", 6.0), ("CC 95", 6.0), ("CC 380", 4.0),
    ("CC 279", 1.0), ("CC 264", 2.0), ("CC 264.1", 2.0), ("CC 266", 3.0),
])
PROV_OFFENCE = Pick([
    ("CC 266", 15.0), ("CC 334", 14.0), ("CC 145", 14.0), ("CC 733.1", 10.0),
    ("CC 320.14", 10.0), ("CC 430", 7.0), ("CC 348", 6.0), ("CC 264.1", 6.0), ("CC 355", 5.0),
    ("CDSA 5(2)", 4.0), ("CC 380", 4.0), ("CC 271", 2.0), ("CC 267", 4.0), ("CC 264", 2.0),
    ("CC 344", 2.0), ("CC 95", 1.0),
])

PROV_TYPE_INACTIVE = Pick([
    ("CUSTODY", 40.0), ("PROBATION", 33.0), ("CONDITIONAL", 9.0), ("INTERMITTENT", 5.0),
    ("FINE", 13.0),
])
PROV_TYPE_ACTIVE = {
    "IN_CUSTODY": Pick([("CUSTODY", 90.0), ("INTERMITTENT", 10.0)]),
    "SUPERVISED": Pick([("PROBATION", 65.0), ("CONDITIONAL", 20.0), ("CUSTODY", 15.0)]),
    "UAL": Pick([("CUSTODY", 50.0), ("CONDITIONAL", 25.0), ("PROBATION", 25.0)]),
}
PROV_STATUS = Pick([
    ("IN_CUSTODY", 7.5), ("SUPERVISED", 22.0), ("UAL", 0.6), ("WARRANT_EXPIRED", 15.0),
    ("ARCHIVED", 54.9),
])
INACTIVE_STATUS = Pick([("ARCHIVED", 65.0), ("WARRANT_EXPIRED", 35.0)])
FEDERAL_TERMS = Pick([((730, 1460), 45.0), ((1461, 3650), 40.0), ((3651, 7300), 15.0)])
PROVINCIAL_TERMS = {"INTERMITTENT": (14, 90), "CONDITIONAL": (60, 729), "PROBATION": (180, 1095)}
FED_RELEASE = Pick([
    ("DAY_PAROLE", 20.0), ("FULL_PAROLE", 25.0), ("STATUTORY_RELEASE", 50.0),
    ("LONG_TERM_SUPERVISION", 5.0),
])

CONDITIONS = {
    "en": (
        "Abstain from alcohol", "Abstain from drugs except as prescribed",
        "No contact with the victim(s) or their family",
        "Reside at a community residential facility",
        "Curfew 22:00 to 06:00", "Do not leave the province without written permission",
        "Follow psychological counselling", "Not to possess weapons",
        "Avoid certain persons (criminal associates)",
        "Not to be in the presence of children under 16 unless supervised",
        "Report all intimate relationships", "Attend substance abuse treatment",
    ),
    "fr": (
        "S'abstenir de consommer de l'alcool",
        "S'abstenir de consommer des drogues sauf sur ordonnance",
        "Aucun contact avec la victime ou sa famille",
        "Résider dans un centre résidentiel communautaire", "Couvre-feu de 22 h à 6 h",
        "Ne pas quitter la province sans autorisation écrite", "Suivre une thérapie psychologique",
        "Ne pas posséder d'armes", "Éviter certaines personnes (fréquentations criminelles)",
        "Ne pas se trouver en présence d'enfants de moins de 16 ans sans supervision",
        "Déclarer toute relation intime", "Participer à un programme de traitement des dépendances",
    ),
}

INCIDENT_TYPE = Pick([
    ("ASSAULT", 28.0), ("CONTRABAND", 30.0), ("ESCAPE_ATTEMPT", 3.0), ("THREAT", 18.0),
    ("DAMAGE", 12.0), ("SELF_HARM", 9.0),
])
INCIDENT_TEXT: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "ASSAULT": ("Struck another inmate in the common area; separated by staff.",
                    "Physical altercation with a cellmate; minor injuries.",
                    "Assaulted an officer during a cell search."),
        "CONTRABAND": ("Unauthorized substance found during a routine cell search.",
                       "Cell phone found hidden in the living unit.",
                       "Homemade alcohol seized from the range."),
        "ESCAPE_ATTEMPT": ("Found in an unauthorized area near the perimeter fence.",
                           "Attempted to leave the escort vehicle during a transfer."),
        "THREAT": ("Uttered threats toward staff during the count.",
                   "Threatening letter to another inmate intercepted."),
        "DAMAGE": ("Damaged cell fixtures.", "Flooded the range by blocking the toilet."),
        "SELF_HARM": ("Self-injury; health care notified and follow-up arranged.",
                      "Placed on observation after a self-harm incident."),
    },
    "fr": {
        "ASSAULT": ("A frappé un autre détenu dans l'aire commune; séparés par le personnel.",
                    "Altercation physique avec un codétenu; blessures mineures.",
                    "A agressé un agent lors d'une fouille de cellule."),
        "CONTRABAND": ("Substance non autorisée trouvée lors d'une fouille de routine.",
                       "Téléphone cellulaire caché dans l'unité de vie.",
                       "Alcool artisanal saisi dans le secteur."),
        "ESCAPE_ATTEMPT": ("Trouvé dans une zone interdite près de la clôture d'enceinte.",
                           "A tenté de quitter le véhicule d'escorte lors d'un transfert."),
        "THREAT": ("A proféré des menaces envers le personnel pendant le dénombrement.",
                   "Lettre de menaces à un autre détenu interceptée."),
        "DAMAGE": ("A endommagé le mobilier de sa cellule.",
                   "A inondé le secteur en bouchant la toilette."),
        "SELF_HARM": ("Automutilation; services de santé avisés, suivi prévu.",
                      "Placé sous observation après un geste d'automutilation."),
    },
}
ALERT_TYPE = Pick([
    ("HIGH_RISK", 20.0), ("VIOLENCE", 30.0), ("SEX_OFFENDER", 8.0), ("ESCAPE_RISK", 12.0),
    ("NO_TRAVEL", 18.0), ("IMMIGRATION_HOLD", 12.0),
])
ALERT_TEXT: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "HIGH_RISK": ("Flagged under the high-risk offender protocol.",
                      "Dangerous offender assessment on file."),
        "SEX_OFFENDER": ("Subject to sex offender registration (SOIRA).",
                         "Registered; annual reporting required."),
        "VIOLENCE": ("History of violence toward staff.",
                     "Violent offence history; approach with caution."),
        "ESCAPE_RISK": ("Prior escape attempt; escort with restraints.",
                        "Unlawfully at large in the past; elevated escape risk."),
        "NO_TRAVEL": ("Court order prohibits leaving Canada.",
                      "Passport surrendered as a release condition."),
        "IMMIGRATION_HOLD": ("CBSA detainer on file; notify before release.",
                             "Subject to a removal order."),
    },
    "fr": {
        "HIGH_RISK": ("Signalé en vertu du protocole des délinquants à risque élevé.",
                      "Évaluation de délinquant dangereux au dossier."),
        "SEX_OFFENDER": ("Assujetti à l'enregistrement des délinquants sexuels (LERDS).",
                         "Enregistré; déclaration annuelle obligatoire."),
        "VIOLENCE": ("Antécédents de violence envers le personnel.",
                     "Antécédents d'infractions violentes; prudence."),
        "ESCAPE_RISK": ("Tentative d'évasion antérieure; escorte avec contraintes.",
                        "Déjà en liberté illégale; risque d'évasion élevé."),
        "NO_TRAVEL": ("Ordonnance interdisant de quitter le Canada.",
                      "Passeport remis comme condition de mise en liberté."),
        "IMMIGRATION_HOLD": ("Mandat de l'ASFC au dossier; aviser avant la libération.",
                             "Visé par une mesure de renvoi."),
    },
}
HEALTH_NOTES: tuple[str, ...] = (
    "Intake health assessment completed.", "Annual physical completed.",
    "Dental appointment scheduled.", "Medication reviewed by the institutional physician.",
    "Mental health follow-up requested.", "Vaccination record updated.",
    "Referred to optometry.", "Chronic condition monitoring; no change.",
)
