namespace SafeTune.Autodiff;

/// <summary>The gradient rule of one operator: given d loss / d outputs, emit d loss / d inputs with standard ops.</summary>
public interface IGradientRule
{
    /// <summary>Emits the wanted input gradients of <see cref="GradientContext.Node"/>.</summary>
    void Build(GradientContext c);
}
