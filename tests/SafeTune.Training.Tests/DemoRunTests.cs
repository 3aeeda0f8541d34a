using System.Text.Json.Nodes;
using SafeTune.Models.Demo;
using SafeTune.Safety.Critics;
using SafeTune.Training.Demo;
using SafeTune.Training.Evaluation;
using SafeTune.Training.Experiments;
using SafeTune.Training.FineTuning;

namespace SafeTune.Training.Tests;

/// <summary>The demo's experiment (scenarios, methods, schedule) and its <c>--json</c> shape, without training anything.</summary>
public sealed class DemoRunTests
{
    private static readonly DemoAssetFiles Assets = new(
        new DemoModelFiles("/d/model", "/d/model/demo.onnx", "/d/model/demo-kv.onnx", "/d/model/tokenizer.json",
            DemoRecipe.Default.LlamaConfig(768), DemoRecipe.Default, "hash", false, 0, 0),
        "/d/attack.jsonl", "/d/harmful.txt", "/d/benign.jsonl", "/d/scary.txt", "/d/probe.json", "/d/ph.txt", "/d/pl.txt", "/d/benign_train.jsonl",
        "/d/task_train.jsonl", "/d/task_test.jsonl");

    private static ExperimentConfig Config(int seeds = 3) =>
        DemoRun.Config(Assets, new DemoOptions { CacheDirectory = "/c", OutDirectory = "/o", Seeds = seeds, Critic = "onnx:/judge" });

    [Fact]
    public void The_demo_runs_three_scenarios_six_ways_with_the_default_and_the_paper_setting_side_by_side()
    {
        var c = Config();
        Assert.Equal(DemoRun.ScenarioNames, c.Scenarios.Select(s => s.Name));
        Assert.Equal(["harmful", "mixed", "benign"], c.Scenarios.Select(s => s.Kind));
        Assert.Equal(["/d/attack.jsonl"], c.Scenarios[0].Harmful);
        Assert.Equal(["/d/task_train.jsonl"], c.Scenarios[1].Benign);
        Assert.Equal(["/d/attack.jsonl"], c.Scenarios[1].Harmful);
        Assert.Equal(0.1, c.Scenarios[1].HarmfulFraction);
        Assert.Equal(["/d/task_train.jsonl"], c.Scenarios[2].Benign);
        Assert.Equal(["/d/task_test.jsonl"], c.Evaluation.Task);
        Assert.Equal([0, 1, 2], c.Seeds);
        c.Validate("demo");

        Assert.Equal(DemoRun.MethodNames, c.Methods.Select(m => m.Name));
        var safety = c.Methods.ToDictionary(m => m.Name, m => m.Safety());
        Assert.Equal(0.5, safety["fixed-kl"].BetaMap.Peek(0), 12);
        foreach (var source in new[] { "probe", "critic" })
        {
            // adaptive-*: SafeTune's default, whatever Methods.Preset gives; paper-*: the paper's clamp map, one beta per batch.
            var preset = Methods.Preset("adaptive", "critic:keyword");
            var adaptive = safety["adaptive-" + source];
            Assert.Equal((preset.BetaMap.Spec, preset.Aggregation), (adaptive.BetaMap.Spec, adaptive.Aggregation));
            var paper = safety["paper-" + source];
            Assert.Equal(("clamp", JudgeAggregation.Mean), (paper.BetaMap.Spec, paper.Aggregation));
            Assert.Equal(adaptive.Risk, paper.Risk);
        }
        Assert.Equal("/d/probe.json", Assert.IsType<Risk.RiskSpec.Probe>(safety["paper-probe"].Risk).Path);
        Assert.Equal("onnx:/judge", Assert.IsType<Risk.RiskSpec.Critic>(safety["paper-critic"].Risk).Judge);

        // Without a critic, the critic's two methods are left out.
        var noCritic = DemoRun.Config(Assets, new DemoOptions { CacheDirectory = "/c", OutDirectory = "/o" });
        Assert.Equal(["standard", "fixed-kl", "adaptive-probe", "paper-probe"], noCritic.Methods.Select(m => m.Name));
    }

    [Fact]
    public void Every_scenario_trains_the_attacks_steps_and_only_the_attack_is_evaluated_during_training()
    {
        var c = Config();
        Assert.Equal(DemoRun.Steps(DemoRun.DefaultEpochs), c.Training.Steps);
        Assert.Equal(38, DemoRun.Steps(2)); // 600 attack examples in batches of 16
        Assert.Equal(0, c.Evaluation.Every);
        Assert.True(c.Scenarios[0].Every > 0);
        Assert.All(c.Scenarios.Skip(1), s => Assert.Null(s.Every));
    }

    [Fact]
    public void Runs_share_the_cores_two_at_a_time_unless_told_otherwise()
    {
        var o = new DemoOptions { CacheDirectory = "/c", OutDirectory = "/o" };
        Assert.Equal((2, 1), DemoRun.Concurrency(o, cores: 2));
        Assert.Equal((2, 4), DemoRun.Concurrency(o, cores: 8));
        Assert.Equal((1, 1), DemoRun.Concurrency(o, cores: 1));
        Assert.Equal((1, 2), DemoRun.Concurrency(o with { Parallel = 1 }, cores: 2));
        Assert.Equal((3, 2), DemoRun.Concurrency(o with { Parallel = 3, Threads = 2 }, cores: 2));
    }

    [Fact]
    public void The_json_keeps_the_attack_under_methods_and_adds_every_scenario_with_the_gain()
    {
        var c = Config(seeds: 2);
        var before = new EvalFigures(0.02, 1.1, 0.05, 0.97, 0.4, 0, 1, TaskExactMatch: 0.1);
        var runs = (from s in c.Scenarios
                    from m in c.Methods
                    from seed in c.Seeds
                    select new ExperimentRun(s.Name, m.Name, seed, "/o/run", new EvalFigures(0.5, 3, 0.1, 0.9, 0.5, 0, 1, TaskExactMatch: seed == 0 ? 0.7 : 0.9),
                        38, 3, 80, m.Name == "standard" ? 0 : 0.5, null, 0, "f")).ToList();
        var json = DemoRun.Json(new ExperimentResults(c, before, runs, 10), 12.34, [("assets", 1), ("critic", 2), ("runs", 9)]);

        foreach (var key in new[] { "asr_before", "utility_before", "overrefusal_before", "seeds", "report", "seconds", "methods", "scenarios" })
            Assert.True(json.ContainsKey(key), key);
        Assert.Equal(0.02, (double)json["asr_before"]!);
        Assert.Equal(12.3, (double)json["seconds"]!);
        string[] keys = ["standard", "fixed_kl", "adaptive_probe", "adaptive_critic", "paper_probe", "paper_critic"];
        Assert.Equal(keys, json["methods"]!.AsObject().Select(p => p.Key));
        Assert.Equal(["attack", "mixed", "benign"], json["scenarios"]!.AsObject().Select(p => p.Key));
        foreach (var (_, scenario) in json["scenarios"]!.AsObject())
        {
            Assert.Equal(keys, scenario!["methods"]!.AsObject().Select(p => p.Key));
            foreach (var (_, method) in scenario["methods"]!.AsObject())
            {
                foreach (var key in new[] { "asr", "utility", "overrefusal", "gain", "mean_beta" }) Assert.NotNull(method![key]);
                Assert.Equal(0.8 - 0.1, (double)method!["gain"]!, 6); // the mean over seeds minus the start
            }
        }
        Assert.True(JsonNode.DeepEquals(json["methods"], json["scenarios"]!["attack"]!["methods"]));
        Assert.Equal(0.5, (double)json["scenarios"]!["benign"]!["methods"]!["paper_critic"]!["mean_beta"]!);
    }
}
