import importlib
import random
import unittest
from unittest import mock

from wasmfn import _reseed


class ReseedTest(unittest.TestCase):
    def setUp(self):
        self.addCleanup(importlib.reload, random)
        importlib.reload(random)

    def test_first_draw_seeds_from_entropy_and_puts_the_originals_back(self):
        original = random.random
        random.seed(7)
        built = [random.random() for _ in range(3)]
        random.seed(7)  # the state every instance starts from
        _reseed.install()
        self.assertIsNot(random.random, original)
        imported_at_build = random.choice  # `from random import choice` in a user's module
        with mock.patch.object(random._inst, "seed", wraps=random._inst.seed) as seed:
            drawn = [random.random() for _ in range(3)]
            imported_at_build([1, 2, 3])
        seed.assert_called_once_with()
        self.assertNotEqual(drawn, built)
        self.assertEqual(random.random, original)

    def test_seed_without_a_seed_waits_for_the_first_draw_and_a_given_seed_holds(self):
        random.seed(7)
        built = [random.random() for _ in range(3)]
        random.seed(7)
        _reseed.install()
        wrapped = random.random
        with mock.patch.object(random._inst, "seed", wraps=random._inst.seed) as seed:
            # What componentize-py's runtime does before each instance's first call.
            random.seed()
            seed.assert_not_called()
            self.assertIs(random.random, wrapped)
            drawn = [random.random() for _ in range(3)]
            seed.assert_called_once_with()
        self.assertNotEqual(drawn, built)

        importlib.reload(random)
        random.seed(7)
        _reseed.install()
        random.seed(11)  # a seed the function gives: its draws are reproducible
        first = [random.random() for _ in range(3)]
        random.seed(11)
        self.assertEqual(first, [random.random() for _ in range(3)])

    def test_functions_bound_elsewhere_are_left_alone(self):
        _reseed.install()
        self.assertIs(random.Random, random.Random)
        self.assertTrue(callable(random.randint))
        self.assertIn(random.randint(1, 3), (1, 2, 3))


if __name__ == "__main__":
    unittest.main()
