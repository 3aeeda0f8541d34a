using SafeTune.Models.Demo;
using Xunit;

namespace SafeTune.Models.Tests;

/// <summary>The demo's benign task: what a benign fine-tune teaches the demo model.</summary>
public sealed class DemoTaskTests
{
    [Fact]
    public void The_task_is_deterministic_and_tests_every_fact_in_a_phrasing_training_never_pairs_with_it()
    {
        var seed = DemoRecipe.Default.Data.Seed;
        var train = DemoTask.Train(seed);
        var test = DemoTask.Test(seed);
        Assert.Equal(train, DemoTask.Train(seed));
        Assert.Equal(test, DemoTask.Test(seed));
        Assert.NotEqual(test, DemoTask.Test(seed + 1));

        // 2 to 13 meters and kilograms: 24 facts, each tested once and trained in every other phrasing.
        Assert.Equal(24, test.Count);
        Assert.Equal(test.Count, test.Select(e => e.Intent).Distinct().Count());
        Assert.Equal(24 * DemoTask.TrainPhrasingsPerFact, train.Count);
        Assert.All(train.GroupBy(e => e.Intent), g => Assert.Equal(DemoTask.TrainPhrasingsPerFact, g.Select(e => e.Prompt).Distinct().Count()));
        var trainPrompts = train.Select(e => e.Prompt).ToHashSet();
        Assert.All(test, e => Assert.DoesNotContain(e.Prompt, trainPrompts));
        // Every tested fact is taught, with the same answer.
        var taught = train.ToLookup(e => e.Intent);
        Assert.All(test, e => Assert.All(taught[e.Intent], t => Assert.Equal(e.Response, t.Response)));
        // The test phrasings vary from fact to fact, so the test is not one wording the model could learn apart.
        Assert.True(test.Select(e => e.Prompt.Replace(e.Intent, "", StringComparison.Ordinal)).Distinct().Count() > 1);

        Assert.All(train.Concat(test), e =>
        {
            Assert.Equal((DemoKind.Benign, DemoTask.Category), (e.Kind, e.Category));
            var parts = e.Intent.Split(' ');
            int k = int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(parts[1] == "meters" ? $"{k} meters is {k * 100} cm." : $"{k} kilograms is {k * 1000} g.", e.Response);
            Assert.Contains(e.Intent, e.Prompt);
        });
    }

    [Fact]
    public void The_demo_data_never_teaches_the_task()
    {
        var seed = DemoRecipe.Default.Data.Seed;
        var taskPrompts = DemoTask.Train(seed).Concat(DemoTask.Test(seed)).Select(e => e.Prompt).ToHashSet();
        Assert.All(DemoData.Train(seed).Concat(DemoData.Test(seed)), e =>
        {
            Assert.DoesNotContain(e.Prompt, taskPrompts);
            Assert.DoesNotContain("centimeter", e.Prompt + " " + e.Response, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("kilogram", e.Prompt + " " + e.Response, StringComparison.OrdinalIgnoreCase);
        });
    }
}
