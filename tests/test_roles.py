import pytest
from django.contrib.auth.models import Group, User

from ris.roles import Role, has_role

pytestmark = pytest.mark.django_db


def test_every_role_exists_as_a_group_after_migrate():
    assert set(Group.objects.values_list("name", flat=True)) >= {r.value for r in Role}


def test_a_user_holds_the_roles_of_its_groups_only():
    user = User.objects.create_user("desk")
    user.groups.add(Group.objects.get(name=Role.FRONT_DESK))
    assert has_role(user, Role.FRONT_DESK)
    assert not has_role(user, Role.TECHNOLOGIST)


def test_admin_role_and_superuser_hold_every_role():
    admin = User.objects.create_user("boss")
    admin.groups.add(Group.objects.get(name=Role.ADMIN))
    root = User.objects.create_superuser("root", "", "x")
    assert has_role(admin, Role.TECHNOLOGIST)
    assert has_role(root, Role.RADIOLOGIST)


def test_inactive_user_holds_no_role():
    user = User.objects.create_user("gone", is_active=False)
    user.groups.add(Group.objects.get(name=Role.ADMIN))
    assert not has_role(user, Role.ADMIN)
