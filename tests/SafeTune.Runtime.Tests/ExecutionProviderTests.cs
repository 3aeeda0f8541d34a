using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Tests.Common;

namespace SafeTune.Runtime.Tests;

public sealed class ExecutionProviderTests
{
    private static FixtureExpectation Fixture => FixtureExpectation.Load("llama_tiny_folded");

    [Fact]
    public void CpuIsAlwaysAvailable()
    {
        Assert.True(SessionFactory.IsAvailable(ExecutionProvider.Cpu));
        Assert.Contains("CPUExecutionProvider", SessionFactory.AvailableProviders);
    }

    [Theory]
    [InlineData(ExecutionProvider.Cuda, "Microsoft.ML.OnnxRuntime.Gpu", "CUDAExecutionProvider")]
    [InlineData(ExecutionProvider.DirectML, "Microsoft.ML.OnnxRuntime.DirectML", "DmlExecutionProvider")]
    public void UnavailableProviderThrowsNamingThePackage(ExecutionProvider provider, string package, string ortName)
    {
        var config = new SessionConfig { Provider = provider };
        var model = Model.Load(Fixture.ModelPath);
        if (SessionFactory.IsAvailable(provider))
        {
            // A build with this provider: a session must come up and give the reference logits.
            using var session = SessionFactory.Create(model, config);
            var logits = OrtRun.Ids(session, Fixture.InputIds, Fixture.InputShape[0], Fixture.InputShape[1])["logits"];
            Assert.True(OrtRun.MaxAbsDiff(logits.Data, Fixture.Logits) <= 1e-3);
            return;
        }

        Assert.DoesNotContain(ortName, SessionFactory.AvailableProviders);
        var fromModel = Assert.Throws<ExecutionProviderUnavailableException>(() => SessionFactory.Create(model, config));
        Assert.Contains(package, fromModel.Message, StringComparison.Ordinal);
        Assert.Contains(ortName, fromModel.Message, StringComparison.Ordinal);
        var fromPath = Assert.Throws<ExecutionProviderUnavailableException>(() => SessionFactory.Create(Fixture.ModelPath, config));
        Assert.Contains(package, fromPath.Message, StringComparison.Ordinal);
        var fromOptions = Assert.Throws<ExecutionProviderUnavailableException>(() => SessionFactory.CreateOptions(config));
        Assert.Contains(package, fromOptions.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CpuWithoutFallbackCreatesAWorkingSession()
    {
        var config = new SessionConfig { Provider = ExecutionProvider.Cpu, DisableCpuFallback = true, IntraOpThreads = 1 };
        using var session = SessionFactory.Create(Fixture.ModelPath, config);
        var logits = OrtRun.Ids(session, Fixture.InputIds, Fixture.InputShape[0], Fixture.InputShape[1])["logits"];
        Assert.Equal(Fixture.LogitsShape, logits.Shape);
        Assert.True(OrtRun.MaxAbsDiff(logits.Data, Fixture.Logits) <= 1e-4);
    }

    [Theory]
    [InlineData("cpu", ExecutionProvider.Cpu)]
    [InlineData("CPU", ExecutionProvider.Cpu)]
    [InlineData(" cuda ", ExecutionProvider.Cuda)]
    [InlineData("Cuda", ExecutionProvider.Cuda)]
    [InlineData("dml", ExecutionProvider.DirectML)]
    [InlineData("directml", ExecutionProvider.DirectML)]
    [InlineData("DirectML", ExecutionProvider.DirectML)]
    public void ParseProviderAcceptsKnownNames(string name, ExecutionProvider expected) =>
        Assert.Equal(expected, SessionConfig.ParseProvider(name));

    [Theory]
    [InlineData("tpu")]
    [InlineData("rocm")]
    [InlineData("openvino")]
    [InlineData("")]
    public void ParseProviderRejectsOtherNamesNamingTheValue(string name)
    {
        var e = Assert.Throws<UserInputException>(() => SessionConfig.ParseProvider(name));
        Assert.Contains($"'{name}'", e.Message, StringComparison.Ordinal);
    }
}
