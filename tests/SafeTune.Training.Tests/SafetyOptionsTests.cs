using System.Text.Json.Nodes;
using SafeTune.Onnx;
using SafeTune.Safety.Critics;
using SafeTune.TestSupport;
using SafeTune.Training.FineTuning;
using SafeTune.Training.Risk;

namespace SafeTune.Training.Tests;

/// <summary>Safety settings are parsed once, into typed values, and recorded as the text they were given.</summary>
public sealed class SafetyOptionsTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Risk_specs_parse_into_their_kinds()
    {
        Assert.IsType<RiskSpec.None>(RiskSpec.Parse("None"));
        Assert.Equal(new RiskSpec.Probe("runs/probe.json", " Probe:runs/probe.json"), RiskSpec.Parse(" Probe:runs/probe.json"));
        Assert.Equal("keyword?threshold=2", Assert.IsType<RiskSpec.Critic>(RiskSpec.Parse("critic:keyword?threshold=2")).Judge);
        Assert.Equal("risk", Assert.Throws<OptionException>(() => RiskSpec.Parse("probe")).Option);
        Assert.Equal("--risk 'judge:x' is not one of none, probe:PROBE.json, critic:SPEC.", Assert.Throws<OptionException>(() => RiskSpec.Parse("judge:x")).Message);
        Assert.Equal("--risk 'critic: ' needs a judge spec after the colon.", Assert.Throws<OptionException>(() => RiskSpec.Parse("critic: ")).Message);
    }

    [Fact]
    public void Presets_parse_every_spec_once_and_apply_the_overrides()
    {
        var s = Methods.Preset("adaptive", "probe:p.json", "ema:0.9", JudgeAggregation.Max, Penalty.L2, 3);
        Assert.Equal("p.json", Assert.IsType<RiskSpec.Probe>(s.Risk).Path);
        Assert.IsType<EmaBetaMap>(s.BetaMap);
        Assert.Equal((JudgeAggregation.Max, Penalty.L2, 3.0), (s.Aggregation, s.Penalty, s.PenaltyStrength));
        // SafeTune's default adaptive setting: ramp:0.25,0.75,0.1,1 per example; the paper's exact setting is one override away.
        var adaptive = Methods.Preset("adaptive", "critic:keyword");
        Assert.Equal(("ramp:0.25,0.75,0.1,1", JudgeAggregation.PerExample), (adaptive.BetaMap.Spec, adaptive.Aggregation));
        var paper = Methods.Preset("adaptive", "critic:keyword", Methods.PaperBetaMap, Methods.PaperAggregation);
        Assert.Equal(("clamp", JudgeAggregation.Mean), (paper.BetaMap.Spec, paper.Aggregation));
        // A map smoothed over steps cannot weight each example: without a weighting given it gets one beta per batch.
        Assert.Equal(JudgeAggregation.Mean, Methods.Preset("adaptive", "critic:keyword", "ema:0.9").Aggregation);
        Assert.Equal("method", Assert.Throws<OptionException>(() => Methods.Preset("adaptive")).Option);
        Assert.Equal("method", Assert.Throws<OptionException>(() => Methods.Preset("sgd")).Option);
        Assert.Equal("beta-map", Assert.Throws<OptionException>(() => Methods.Preset("standard", betaMap: "sigmoid")).Option);
        // Each run starts its own copy of a stateful map.
        Assert.NotSame(s.BetaMap, s.BetaMap.Start());
        Assert.Same(BetaMap.None, BetaMap.None.Start());
    }

    [Fact]
    public void Typed_settings_round_trip_through_options_json_as_the_text_given()
    {
        var safety = Methods.Preset("fixed-kl", "Probe:probes/x.json", "linear:0.10, 0.9");
        using var run = new RunFolder(_dir.File("run"));
        run.WriteOptions(new JsonObject { ["safety"] = safety.Record("probe") });

        // The text is what runs recorded when the settings were strings, so their folders still resume.
        var recorded = JsonNode.Parse(File.ReadAllText(run.OptionsPath))!["safety"]!;
        Assert.Equal("Probe:probes/x.json", (string?)recorded["risk"]);
        Assert.Equal("linear:0.10, 0.9", (string?)recorded["beta_map"]);
        Assert.Equal("""{"risk":"Probe:probes/x.json","risk_source":"probe","beta_map":"linear:0.10, 0.9","weighting":"batch","aggregation":"mean","penalty":"kl","penalty_strength":1}""",
            safety.Record("probe").ToJsonString());

        var again = Methods.Preset("fixed-kl", (string)recorded["risk"]!, (string)recorded["beta_map"]!);
        Assert.Equal(safety.Risk, again.Risk);
        Assert.Equal(safety.BetaMap.Spec, again.BetaMap.Spec);
        Assert.Empty(run.RequireSameOptions(new JsonObject { ["safety"] = again.Record("probe") }));
    }
}
