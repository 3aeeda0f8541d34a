using SafeTune.Onnx;
using SafeTune.Training.Risk;

namespace SafeTune.Training.Tests;

public sealed class BetaMapTests
{
    [Theory]
    [InlineData(1.0, 0.1)]   // r = 1: clamp(-1/3) -> 0.1
    [InlineData(2.0, 0.1)]   // r = 2: 0 -> 0.1
    [InlineData(3.5, 0.5)]   // r = 3.5: 0.5
    [InlineData(4.0, 2.0 / 3)]
    [InlineData(5.0, 0.9)]   // r = 5: 1 -> 0.9
    public void Clamp_is_the_papers_map_of_the_judge_score(double score, double beta)
    {
        var map = BetaMap.Parse("clamp");
        Assert.Equal(beta, map.Next(Math.Clamp((score - 1) / 4, 0, 1)), 12);
    }

    [Fact]
    public void Linear_interpolates_between_its_bounds()
    {
        var map = BetaMap.Parse("linear:0.2,0.6");
        Assert.Equal(0.2, map.Next(0), 12);
        Assert.Equal(0.4, map.Next(0.5), 12);
        Assert.Equal(0.6, map.Next(1), 12);
        Assert.Equal("linear:0.2,0.6", map.Spec);
    }

    [Fact]
    public void Ramp_trains_low_risk_plainly_holds_high_risk_to_the_reference_and_blends_between()
    {
        var map = BetaMap.Parse("ramp:0.2,0.6");
        Assert.Equal(0.0, map.Next(0), 12);
        Assert.Equal(0.0, map.Next(0.2), 12);
        Assert.Equal(0.5, map.Next(0.4), 12);
        Assert.Equal(1.0, map.Next(0.6), 12);
        Assert.Equal(1.0, map.Next(1), 12);
        Assert.Equal("ramp:0.2,0.6", map.Spec);
        Assert.False(map.IsStateful);
        Assert.False(map.IgnoresRisk);
    }

    [Fact]
    public void Ramp_with_a_floor_keeps_beta_min_below_the_low_risk_and_beta_max_above_the_high_one()
    {
        var map = BetaMap.Parse("ramp:0.25,0.75,0.1,1");
        Assert.Equal(0.1, map.Next(0), 12);
        Assert.Equal(0.1, map.Next(0.25), 12);
        Assert.Equal(0.1 + 0.9 * 0.5, map.Next(0.5), 12);
        Assert.Equal(1.0, map.Next(0.75), 12);
        Assert.Equal(1.0, map.Next(1), 12);
        Assert.Equal("ramp:0.25,0.75,0.1,1", map.Spec);
        Assert.Equal("ramp:0.2,0.6", BetaMap.Parse("ramp:0.2,0.6,0,1").Spec);
        Assert.Equal(0.8, BetaMap.Parse("ramp:0,0.5,0.2,0.8").Next(0.9), 12);
    }

    [Fact]
    public void Ema_smooths_the_risk_and_its_state_round_trips()
    {
        var map = (EmaBetaMap)BetaMap.Parse("ema:0.5");
        Assert.Equal(0.1 + 0.8 * 1.0, map.Next(1.0), 12);       // m = 1 (first risk)
        Assert.Equal(0.1 + 0.8 * 0.5, map.Next(0.0), 12);       // m = 0.5
        Assert.Equal(0.1 + 0.8 * 0.75, map.Peek(1.0), 12);      // peek does not update
        Assert.Equal(0.5, map.Average);
        var copy = (EmaBetaMap)BetaMap.Parse(map.Spec);
        copy.RestoreState(map.SaveState());
        Assert.Equal(map.Next(0.2), copy.Next(0.2), 15);
        Assert.True(map.IsStateful);
    }

    [Fact]
    public void Fixed_and_none_ignore_the_risk()
    {
        Assert.Equal(0.3, BetaMap.Parse("fixed:0.3").Next(1.0));
        Assert.Equal(0.0, BetaMap.Parse("none").Next(1.0));
        Assert.True(BetaMap.Parse("none").IgnoresRisk);
        Assert.Equal("none", BetaMap.Parse("fixed:0").Spec);
    }

    [Theory]
    [InlineData("square", "is not one of")]
    [InlineData("linear:0.1", "takes 2")]
    [InlineData("linear:0.9,0.1", "must not exceed")]
    [InlineData("fixed:1.5", "must lie in [0, 1]")]
    [InlineData("fixed:x", "not a number")]
    [InlineData("ema:1", "decay")]
    [InlineData("ramp:0.6,0.2", "LOW < HIGH")]
    [InlineData("ramp:0.5", "takes 2 or 4")]
    [InlineData("ramp:0.2,0.6,0.5", "takes 2 or 4")]
    [InlineData("ramp:0.2,0.6,0.9,0.1", "must not exceed")]
    [InlineData("ramp:0.2,0.6,0,1.5", "must lie in [0, 1]")]
    public void Bad_specs_say_what_is_wrong(string spec, string message)
    {
        var e = Assert.Throws<OptionException>(() => BetaMap.Parse(spec));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void A_risk_outside_the_unit_interval_is_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => BetaMap.Parse("clamp").Next(1.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => BetaMap.Parse("clamp").Next(double.NaN));
    }
}
