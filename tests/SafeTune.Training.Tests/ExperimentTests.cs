using SafeTune.TestSupport;
using System.Text.Json.Nodes;
using SafeTune.Models.Demo;
using SafeTune.Onnx;
using SafeTune.Safety.Critics;
using SafeTune.Safety.Probes;
using SafeTune.Training.Experiments;
using SafeTune.Training.FineTuning;

namespace SafeTune.Training.Tests;

/// <summary>Experiments end to end on a tiny model, the mixed scenario's data, the fused probe in a real run, and config errors.</summary>
public sealed class ExperimentTests : IDisposable
{
    private readonly TinyChat _chat = new();

    public void Dispose() => _chat.Dispose();

    private static void WriteJsonl(string path, IEnumerable<(string Prompt, string Response)> rows) =>
        File.WriteAllLines(path, rows.Select(r => new JsonObject { ["prompt"] = r.Prompt, ["response"] = r.Response }.ToJsonString()));

    /// <summary>Writes a tiny model (plain and cached graphs with the same weights), data and a config; returns the config path.</summary>
    private string Setup(string lr = "0.01")
    {
        _chat.Plain().Save(_chat.File("model.onnx"));
        _chat.Cached().Save(_chat.File("model-kv.onnx"));
        var train = DemoData.Train(7);
        var test = DemoData.Test(7);
        WriteJsonl(_chat.File("attack.jsonl"), DemoData.Attack(7, 8, seed: 1).Select(e => (e.Prompt, e.Response)));
        WriteJsonl(_chat.File("benign.jsonl"), train.Where(e => e.Kind == DemoKind.Benign).Take(12).Select(e => (e.Prompt, e.Response)));
        File.WriteAllLines(_chat.File("harmful_test.txt"), test.Where(e => e.Kind == DemoKind.Harmful).Take(4).Select(e => e.Prompt));
        WriteJsonl(_chat.File("benign_test.jsonl"), test.Where(e => e.Kind == DemoKind.Benign).Take(4).Select(e => (e.Prompt, e.Response)));
        File.WriteAllLines(_chat.File("scary_test.txt"), test.Where(e => e.Kind == DemoKind.ScarySafe).Take(4).Select(e => e.Prompt));
        var config = $$"""
            {
              "name": "tiny",
              "model": "model.onnx", "generation_model": "model-kv.onnx", "tokenizer": "{{Path.GetFileName(_chat.TokenizerPath)}}", "template": "chatml",
              "training": {"steps": 2, "batch_size": 4, "lr": {{lr}}, "max_length": 64, "lora_rank": 4, "lora_alpha": 8, "warmup": 0, "threads": 1},
              "scenarios": [
                {"name": "harmful", "kind": "harmful", "harmful": ["attack.jsonl"]},
                {"name": "mixed", "kind": "mixed", "benign": ["benign.jsonl"], "harmful": ["attack.jsonl"], "harmful_fraction": 0.25}],
              "methods": [{"name": "standard"}, {"name": "fixed-kl"}],
              "seeds": [0, 1],
              "evaluation": {"harmful": ["harmful_test.txt"], "benign": ["benign_test.jsonl"], "overrefusal": ["scary_test.txt"],
                             "max_new_tokens": 4, "every": 1},
              "out": "out"
            }
            """;
        var path = _chat.File("experiment.json");
        File.WriteAllText(path, config);
        return path;
    }

    [Fact]
    public void An_experiment_runs_the_grid_writes_its_report_and_resumes_without_rerunning()
    {
        var config = ExperimentConfig.Load(Setup());
        Assert.Equal(_chat.File("out"), config.Out);
        var results = ExperimentRunner.Run(config);
        Assert.Equal(2 * 2 * 2, results.Runs.Count);
        Assert.All(results.Runs, r =>
        {
            Assert.Equal(2, r.Steps);
            Assert.NotNull(r.After.Asr);
            Assert.True(File.Exists(Path.Combine(r.Directory, "model.onnx")), r.Directory);
            Assert.True(File.Exists(Path.Combine(r.Directory, "model-kv.onnx")), r.Directory);
        });
        Assert.All(results.Runs.Where(r => r.Method == "fixed-kl"), r => Assert.Equal(0.5, r.MeanBeta, 12));
        var report = File.ReadAllText(Path.Combine(_chat.File("out"), "report.md"));
        Assert.Contains("| standard |", report);
        Assert.Contains("| fixed-kl |", report);
        Assert.Contains("## mixed (benign data with a harmful fraction of 25%)", report);
        foreach (var png in new[] { "harmful_asr.png", "harmful_asr_over_steps.png", "harmful_beta_over_steps.png", "mixed_asr.png" })
            Assert.True(new FileInfo(Path.Combine(_chat.File("out"), png)).Length > 1000, png);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(_chat.File("out"), "results.json")))!;
        Assert.Equal(4, json["summaries"]!.AsArray().Count);
        Assert.Equal(2, (int)json["summaries"]![0]!["asr"]!["n"]!);

        // A second invocation finds every run finished and retrains nothing.
        var model = results.Runs[0].Directory;
        var stamp = File.GetLastWriteTimeUtc(Path.Combine(model, "model.onnx"));
        var again = ExperimentRunner.Run(config);
        Assert.Equal(results.Runs.Select(r => r.After), again.Runs.Select(r => r.After));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(Path.Combine(model, "model.onnx")));

        // A changed training setting reruns.
        var changed = ExperimentConfig.Load(Setup(lr: "0.02")) with { Scenarios = [config.Scenarios[0]], Methods = [config.Methods[0]], Seeds = [0] };
        ExperimentRunner.Run(changed);
        Assert.NotEqual(stamp, File.GetLastWriteTimeUtc(Path.Combine(model, "model.onnx")));
    }

    [Fact]
    public void Runs_trained_two_at_a_time_give_the_results_of_one_at_a_time_in_grid_order()
    {
        var config = ExperimentConfig.Load(Setup());
        var one = ExperimentRunner.Run(config with { Out = _chat.File("one") });
        var two = ExperimentRunner.Run(config with { Out = _chat.File("two"), Parallel = 2 });
        Assert.Equal(one.Runs.Select(r => (r.Scenario, r.Method, r.Seed)), two.Runs.Select(r => (r.Scenario, r.Method, r.Seed)));
        Assert.Equal(one.Runs.Select(r => r.After with { Seconds = 0 }), two.Runs.Select(r => r.After with { Seconds = 0 }));
        Assert.Equal(one.Runs.Select(r => File.ReadAllBytes(Path.Combine(r.Directory, "model.onnx"))),
            two.Runs.Select(r => File.ReadAllBytes(Path.Combine(r.Directory, "model.onnx"))));
    }

    [Fact]
    public void The_task_set_gives_each_model_its_exact_match_and_the_report_its_gain()
    {
        var path = Setup();
        var config = ExperimentConfig.Load(path);
        WriteJsonl(_chat.File("task_test.jsonl"), DemoTask.Test(7).Take(3).Select(e => (e.Prompt, e.Response)));
        config = config with
        {
            Scenarios = [new ExperimentScenario { Name = "benign", Kind = "benign", Benign = [_chat.File("benign.jsonl")] }],
            Methods = [config.Methods[0]], Seeds = [0], Evaluation = config.Evaluation with { Task = [_chat.File("task_test.jsonl")], Every = 0 },
        };
        var results = ExperimentRunner.Run(config);
        Assert.NotNull(results.Before.TaskExactMatch);
        Assert.NotNull(results.Runs[0].After.TaskExactMatch);
        var summary = ExperimentReport.Summaries(results)[0];
        Assert.Equal(results.Runs[0].After.TaskExactMatch!.Value - results.Before.TaskExactMatch!.Value, summary.Gain(results.Before)!.Value.Mean, 12);
        Assert.Contains("task gain (points)", File.ReadAllText(Path.Combine(config.Out!, "report.md")));
    }

    [Fact]
    public void Demo_names_resolve_to_the_demo_assets()
    {
        var path = _chat.File("demo.json");
        File.WriteAllText(path, """
            {"model": "demo", "scenarios": [{"name": "a", "kind": "mixed", "benign": ["demo:benign-train:10"], "harmful": ["demo:attack"]}],
             "methods": [{"name": "adaptive-probe", "method": "adaptive", "risk": "probe:demo"}, {"name": "standard"}],
             "evaluation": {"harmful": ["demo:harmful"], "benign": ["demo:benign"], "overrefusal": ["demo:scary-safe"]}}
            """);
        var config = ExperimentConfig.Load(path);
        Assert.True(config.UsesDemo());
        var model = new DemoModelFiles("/d/model", "/d/model/demo.onnx", "/d/model/demo-kv.onnx", "/d/model/tokenizer.json",
            DemoRecipe.Default.LlamaConfig(768), DemoRecipe.Default, "hash", false, 0, 0);
        var assets = new Demo.DemoAssetFiles(model, "/d/attack.jsonl", "/d/harmful.txt", "/d/benign.jsonl", "/d/scary.txt", "/d/probe.json",
            "/d/ph.txt", "/d/pl.txt", "/d/benign_train.jsonl", "/d/task_train.jsonl", "/d/task_test.jsonl");
        var resolved = config.WithDemo(assets);
        Assert.Equal("/d/model/demo.onnx", resolved.Model);
        Assert.Equal("/d/model/demo-kv.onnx", resolved.GenerationModel);
        Assert.Equal("/d/model/tokenizer.json", resolved.Tokenizer);
        Assert.Equal("chatml", resolved.Template);
        Assert.Equal(["/d/benign_train.jsonl:10"], resolved.Scenarios[0].Benign);
        Assert.Equal(["/d/attack.jsonl"], resolved.Scenarios[0].Harmful);
        Assert.Equal("probe:/d/probe.json", resolved.Methods[0].Risk);
        Assert.Equal(["/d/harmful.txt"], resolved.Evaluation.Harmful);
        Assert.Equal(["/d/scary.txt"], resolved.Evaluation.OverRefusal);
        Assert.False(resolved.UsesDemo());
        var bad = config with { Evaluation = config.Evaluation with { Harmful = ["demo:nothing"] } };
        Assert.Contains("demo:attack, demo:benign-train, demo:task-train", Assert.Throws<InvalidDataException>(() => bad.WithDemo(assets)).Message);
    }

    [Fact]
    public void The_mixed_scenario_samples_harmful_rows_to_the_fraction()
    {
        Setup();
        var scenario = new ExperimentScenario
        {
            Name = "m", Kind = "mixed", Benign = [_chat.File("benign.jsonl")], Harmful = [_chat.File("attack.jsonl")], HarmfulFraction = 0.25,
        };
        var specs = ExperimentRunner.ScenarioData(scenario, seed: 0);
        Assert.Equal([_chat.File("benign.jsonl"), _chat.File("attack.jsonl") + "*4"], specs); // 12 benign -> 4 harmful = 25%
        var tooMany = scenario with { HarmfulFraction = 0.9 };
        var e = Assert.Throws<InvalidDataException>(() => ExperimentRunner.ScenarioData(tooMany, 0));
        Assert.Contains("needs 108 harmful", e.Message);
    }

    [Fact]
    public void Public_set_names_in_a_config_are_kept_as_names()
    {
        var config = ExperimentConfig.Load(Path.Combine(Repo.Root, "experiments", "public-sets.json"));
        Assert.Equal(["data:advbench*300"], config.Scenarios[0].Harmful);
        Assert.Equal(["data:catqa", "data:do-not-answer", "data:xstest@label=unsafe"], config.Evaluation.Harmful);
        Assert.Equal(["data:xstest@label=safe"], config.Evaluation.OverRefusal);
    }

    [Theory]
    [InlineData("{\"model\": \"m.onnx\"}", "\"tokenizer\" is required")]
    [InlineData("{\"model\": \"m.onnx\", \"tokenizer\": \"t\", \"scenarios\": [{\"name\": \"a\", \"kind\": \"sideways\", \"harmful\": [\"x\"]}], \"methods\": [{\"name\": \"standard\"}], \"evaluation\": {\"harmful\": [\"h\"]}}", "\"kind\" must be harmful, mixed or benign")]
    [InlineData("{\"model\": \"m.onnx\", \"tokenizer\": \"t\", \"scenarios\": [{\"name\": \"a\", \"harmful\": [\"x\"]}], \"methods\": [{\"name\": \"adaptive\"}], \"evaluation\": {\"harmful\": [\"h\"]}}", "method 'adaptive': --method adaptive needs a risk source")]
    [InlineData("{\"model\": \"m.onnx\", \"tokenizer\": \"t\", \"learning_rate\": 3}", "learning_rate")]
    [InlineData("{\"model\": ", "not a valid experiment config")]
    public void Bad_configs_name_the_field(string text, string message)
    {
        var path = _chat.File("bad.json");
        File.WriteAllText(path, text);
        var e = Assert.Throws<InvalidDataException>(() => ExperimentConfig.Load(path));
        Assert.Contains("bad.json", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void A_probe_trained_on_the_model_is_fused_into_the_reference_pass_and_scores_like_the_probe()
    {
        Setup();
        var train = DemoData.Train(7);
        File.WriteAllLines(_chat.File("probe_harmful.txt"), train.Where(e => e.Kind == DemoKind.Harmful).Take(20).Select(e => e.Prompt));
        File.WriteAllLines(_chat.File("probe_harmless.txt"), train.Where(e => e.Kind == DemoKind.Benign).Take(20).Select(e => e.Prompt));
        var probe = ProbeTraining.Train(new ProbeTrainOptions
        {
            ModelPath = _chat.File("model.onnx"), Tokenizer = _chat.TokenizerPath, ChatTemplate = Models.Chat.ChatTemplates.ChatMl,
            Harmful = [_chat.File("probe_harmful.txt")], Harmless = [_chat.File("probe_harmless.txt")],
        }).Probe;
        probe.Save(_chat.File("probe.json"));

        var job = TrainJob.Run(new TrainJobOptions
        {
            Model = _chat.File("model.onnx"), Tokenizer = _chat.TokenizerPath, Template = "chatml", Data = [_chat.File("attack.jsonl")],
            Steps = 2, BatchSize = 4, MaxLength = 64, Lora = new Autodiff.Lora.LoraOptions { Rank = 4, Alpha = 8 }, WarmupSteps = 0,
            Safety = Methods.Preset("adaptive", "probe:" + _chat.File("probe.json"), Methods.PaperBetaMap, JudgeAggregation.PerExample),
            Runtime = new Runtime.SessionConfig { IntraOpThreads = 1 },
        });
        Assert.Contains("fused", job.RiskSource);
        var examples = Data.DatasetMix.Parse([_chat.File("attack.jsonl")]).Load().ToDictionary(e => e.Id);
        foreach (var step in job.Result.Log)
        {
            var prompts = step.Examples.Select(id => examples[id].Prompt).ToList();
            var expected = ProbeTraining.Score(probe, prompts);
            for (int i = 0; i < prompts.Count; i++)
                Assert.True(Math.Abs(step.ExampleRisks![i] - expected[i]) < 1e-4, $"step {step.Step} example {i}: fused {step.ExampleRisks[i]} vs probe {expected[i]}");
            Assert.Equal([.. step.ExampleRisks!.Select(r => Math.Clamp((1 + 4 * r - 2) / 3, 0.1, 0.9))], step.ExampleBetas!);
        }

        // Fine-tuning another model with the same probe: the probe runs its own model on the prompt text instead.
        _chat.Plain(seed: 9).Save(_chat.File("other.onnx"));
        var other = TrainJob.Run(new TrainJobOptions
        {
            Model = _chat.File("other.onnx"), Tokenizer = _chat.TokenizerPath, Template = "chatml", Data = [_chat.File("attack.jsonl")],
            Steps = 1, BatchSize = 4, MaxLength = 64, Lora = new Autodiff.Lora.LoraOptions { Rank = 4, Alpha = 8 }, WarmupSteps = 0,
            Safety = Methods.Preset("adaptive", "probe:" + _chat.File("probe.json"), Methods.PaperBetaMap, JudgeAggregation.PerExample),
            Runtime = new Runtime.SessionConfig { IntraOpThreads = 1 },
        });
        Assert.Contains("separate pass", other.RiskSource);
        var first = other.Result.Log[0];
        var want = ProbeTraining.Score(probe, [.. first.Examples.Select(id => examples[id].Prompt)]);
        for (int i = 0; i < want.Length; i++) Assert.Equal(want[i], first.ExampleRisks![i], 12);
    }
}
