"""One person's history across every system (``GetOffenderHistory``).

``request`` admits the request, ``assemble`` runs its parts as ordinary
policy-checked queries and links the files, ``linkage`` scores files that
lack the FPS number, ``timeline`` turns rows into dated facts.
"""
