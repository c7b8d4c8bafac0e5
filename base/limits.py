"""The largest whole numbers the database columns hold, as validators for fields people type
into. PostgreSQL's `integer` and `smallint` are the columns in production; SQLite stores 64
bits whatever the type, so without these a figure accepted in development fails in production,
and one past 64 bits fails on SQLite too."""

from django.core.validators import MaxValueValidator

INTEGER_MAX = 2**31 - 1
SMALLINT_MAX = 2**15 - 1

fits_integer_column = MaxValueValidator(INTEGER_MAX)
fits_smallint_column = MaxValueValidator(SMALLINT_MAX)
