from django.contrib.postgres.indexes import GinIndex
from django.db import models


class Product(models.Model):
    name = models.CharField(max_length=100)

    class Meta:
        indexes = [GinIndex(fields=["name"], name="product_name_trgm", opclasses=["gin_trgm_ops"])]
