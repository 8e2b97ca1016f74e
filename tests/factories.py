import factory
from django.contrib.auth.models import Group, User

from config.roles import roles_ensure
from inventory.models import Product
from orders.models import Customer


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n}")
    name = factory.Sequence(lambda n: f"Product {n}")
    # Order tests do not need stock; inventory tests ask for tracked products explicitly.
    track_inventory = False


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.LazyAttribute(lambda o: f"{o.name.lower().replace(' ', '.')}@example.com")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-1")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if extracted:
            if not Group.objects.filter(name=extracted).exists():
                roles_ensure()  # a transactional test flushed the migration's groups
            self.groups.add(Group.objects.get(name=extracted))
            self.is_staff = extracted in ("order_staff", "auditor")
            self.save()
